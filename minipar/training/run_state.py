"""``Run``: everything one rank knows about a training run, as one typed record; and which
rows of a global batch each rank takes (``shard_rows``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from minipar.autograd import Tensor
from minipar.comm.communicator import Comm
from minipar.nn.module import Module
from minipar.nn.optim import Optimizer, clip_grad_norm
from minipar.training.config import TrainConfig
from minipar.training.run_dir import MetricsLog
from minipar.training.sync import AllreduceSync, AverageSync, ParameterServerSync, check_replicas
from minipar.training.shard import Sharder
from minipar.training.tasks import Task, TaskConfig, TaskData

Sync = Union[AllreduceSync, AverageSync, ParameterServerSync]


@dataclass
class Run:
    comm: Comm
    cfg: TrainConfig
    tcfg: TaskConfig
    task: Task
    data: TaskData
    model: Module
    opt: Optimizer
    sync: Sync
    run_dir: str
    per_epoch: int
    total_steps: int
    step: int = 0
    state: tuple[Tensor, Tensor] | None = None  # carried LSTM (h, c) of this rank's rows
    log: MetricsLog | None = None
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    tokens: int = 0
    stop_requested: str = ""  # the signal that stopped the run (agreed by all ranks)
    last_norm: float = 0.0
    saved_step: int = -1  # the step of the checkpoint on disk (no need to write it again)
    train_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    scheduler: Callable[[list, int], list[list[int]]] | None = None
    local_terms: int = 0  # loss terms (tokens or examples) this rank trained on
    _shards: dict[tuple, list] = field(default_factory=dict)  # batch shape -> every rank's rows

    def clip(self) -> None:
        """Global gradient-norm clipping after the sync (every rank sees the same norm), and
        a replica check every --check-sync steps."""
        params = self.model.parameters()
        self.last_norm = clip_grad_norm(params, self.cfg.clip if self.cfg.clip else 0.0)
        every = self.cfg.check_sync
        if every and (self.step + 1) % every == 0 and self.cfg.sync != "average":
            check_replicas(self.comm, params, self.step + 1)


def shard_rows(run: Run, batch) -> list:
    """Every rank's rows of this global batch (a pure function: no message needed)."""
    n = len(batch[0])
    cfg = run.cfg
    weights = None
    if cfg.shard == "balanced":  # rows weighted by their tokens (classifier: lengths)
        weights = batch[1] if run.task.kind == "classifier" else np.ones(n)
    elif cfg.shard == "weighted":
        weights = cfg.weights()
    key = (n, None if weights is None or cfg.shard == "weighted" else tuple(np.asarray(weights)))
    if key not in run._shards:
        run._shards[key] = Sharder(n, run.comm.size, cfg.shard, cfg.shard_policy,
                                   weights=weights, scheduler=run.scheduler).all_shards()
    return run._shards[key]

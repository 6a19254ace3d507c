"""Checkpoints of a training run: save every rank's part, and resume from the latest one.

The files themselves (atomic writes, checksums, the layout) are :mod:`minipar.training.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from minipar.autograd import Tensor
from minipar.core import backend
from minipar.core.backend import xp
from minipar.core.errors import CheckpointError, Divergence
from minipar.training import checkpoint as ckpt
from minipar.training.run_state import Run, shard_rows


def save_checkpoint(run: Run) -> str | None:
    """Rank 0 writes parameters, optimizer state, step, every rank's RNG state and carried
    LSTM state, the vocabulary and the configuration (see minipar.training.checkpoint).

    First every rank checks its parameters are finite (one allreduce of a flag): a diverged
    model must never replace the last good checkpoint."""
    comm = run.comm
    if run.saved_step == run.step:
        return os.path.join(run.run_dir, "checkpoint", f"step-{run.step:08d}")
    bad = np.array([sum(not xp.isfinite(p.data).all() for p in run.model.parameters())],
                   dtype=np.float64)
    mine = {"rng": backend.get_rng_state(),
            "state": None if run.state is None else [backend.to_numpy(s.data) for s in run.state],
            "rows": None if run.state is None else [int(i) for i in _my_rows(run)]}
    if run.cfg.sync == "average" and comm.size > 1:  # replicas differ between averages
        mine["own"] = {**{f"param/{k}": a for k, a in run.model.state_dict().items()},
                       **{f"optim/{k}": a for k, a in
                          ckpt.flatten_optim(run.opt.state_dict()).items()}}
    with comm.phase("checkpoint"):
        if comm.size > 1:
            comm.allreduce(bad)
        every = comm.gather_obj(mine, 0) if comm.size > 1 else [mine]
    if bad[0]:
        raise Divergence(f"the parameters became non-finite by step {run.step}; lower --lr "
                         f"(now {run.tcfg.lr}); the last good checkpoint is kept in "
                         f"{run.run_dir}")
    run.saved_step = run.step
    if comm.rank != 0:
        return None
    ranks = _global_state(every, run.tcfg.batch_size)
    for r, m in enumerate(every):
        ranks.update({f"r{r}/{k}": a for k, a in m.get("own", {}).items()})
    epoch, pos = divmod(run.step, max(run.per_epoch, 1))
    meta = {"config": dataclasses.asdict(run.cfg), "model": run.cfg.model, "ranks": comm.size,
            "sync": run.cfg.sync, "epoch": epoch,
            "data_position": {"epoch": epoch, "batch": pos, "per_epoch": run.per_epoch,
                              "rule": "every rank's batches are a function of (epoch, batch)"},
            "vocab": run.data.vocab.to_dict(), "rng": [m["rng"] for m in every]}
    return ckpt.save(run.run_dir, run.step, run.model.state_dict(), run.opt.state_dict(),
                     meta, ranks)


def resume(run: Run) -> None:
    """Continue from the run directory's latest checkpoint; refuse one that does not fit."""
    params, optim, meta, ranks = ckpt.load(run.cfg.resume)
    c, cfg = run.comm, run.cfg
    where = run.cfg.resume
    own = f"r{c.rank}/"
    if meta.get("ranks") == c.size and f"{own}optim/t" in ranks:  # --sync average: my replica
        params = {k[len(own) + 6:]: a for k, a in ranks.items() if k.startswith(own + "param/")}
        optim = ckpt.unflatten_optim({k[len(own) + 6:]: a for k, a in ranks.items()
                                      if k.startswith(own + "optim/")})
    if meta.get("model") != cfg.model:
        raise CheckpointError(f"{where}: checkpoint of a {meta.get('model')!r} model, "
                              f"not {cfg.model!r}")
    if meta.get("vocab") != run.data.vocab.to_dict():
        raise CheckpointError(f"{where}: the checkpoint's vocabulary differs from "
                              f"this data's (another corpus or --tokens?)")
    try:
        run.model.load_state_dict(params)
        run.opt.load_state_dict(optim)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{where}: does not fit this model ({exc})") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    run.step = run.saved_step = int(meta["step"])
    if hasattr(run.sync, "t"):  # --sync average counts steps to its next averaging
        run.sync.t = run.step
    saved = meta.get("config", {})
    if meta["ranks"] == c.size:
        backend.set_rng_state(meta["rng"][c.rank])
    elif cfg.sync != "allreduce":
        raise CheckpointError(f"{where}: written by {meta['ranks']} ranks; resuming "
                              f"on {c.size} ranks works only with --sync allreduce")
    else:
        run.notes.append(f"resumed on {c.size} ranks from {meta['ranks']}: rows are shared out "
                         f"anew (the carried LSTM state follows its rows) and dropout draws "
                         f"differ; parameters and optimizer state continue exactly")
    if "state/h" in ranks and saved.get("batch_size") == cfg.batch_size:
        run.state = _my_state(run, ranks)
    elif "state/h" in ranks:
        run.notes.append("--batch-size changed: the carried LSTM state restarts from zeros")
    if run.step >= run.total_steps:
        run.notes.append(f"the checkpoint is at step {run.step}, already at --steps "
                         f"{run.total_steps}: nothing left to train")
    else:
        run.notes.append(f"resumed from {ckpt.resolve(where)[0]} at step {run.step} of "
                         f"{run.total_steps}")
    if c.rank == 0:
        _trim_metrics(run.run_dir, run.step)


def _trim_metrics(run_dir: str, step: int) -> None:
    """Drop metrics.jsonl rows past the checkpoint (steps that will be trained again)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    keep = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
    ckpt.atomic_write(path, "".join(keep).encode())


# --- the carried LSTM state, by global row ------------------------------------------------
def _my_rows(run: Run) -> list[int]:
    """The global rows (streams) of a batch that this rank holds."""
    n = run.tcfg.batch_size
    return list(shard_rows(run, [np.empty(n)])[run.comm.rank])


def _global_state(every: list[dict], n: int) -> dict:
    """Every rank's (h, c) put at its global rows: ``state/h``, ``state/c`` (L, n, H) and
    ``state/held`` (n,): which rows some rank held (``--shard-policy drop`` leaves some out).
    Saved this way, the state can be shared out again on any number of ranks."""
    parts = [m for m in every if m["state"] is not None]
    if not parts:
        return {}
    L, _, H = parts[0]["state"][0].shape
    h = np.zeros((L, n, H), parts[0]["state"][0].dtype)
    c, held = np.zeros_like(h), np.zeros(n, bool)
    for m in parts:
        h[:, m["rows"]], c[:, m["rows"]] = m["state"]
        held[m["rows"]] = True
    return {"state/h": h, "state/c": c, "state/held": held}


def _my_state(run: Run, ranks: dict):
    """This rank's rows of the saved global state, as the (h, c) the next step carries."""
    rows = _my_rows(run)
    if not ranks["state/held"][rows].all():
        run.notes.append("some rows were held by no rank when the checkpoint was written "
                         "(--shard-policy drop): their LSTM state starts from zeros")
    return (Tensor(backend.from_numpy(ranks["state/h"][:, rows])),
            Tensor(backend.from_numpy(ranks["state/c"][:, rows])))

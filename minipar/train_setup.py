"""Everything around the training loop: building the run, sharding rows, evaluation,
checkpoints and the final report. ``train.py`` holds the loop itself."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from minipar import backend as B
from minipar import checkpoint as ckpt
from minipar.errors import CheckpointError, ConfigError
from minipar.optim import clip_grad_norm
from minipar.parallel.shard import Sharder
from minipar.parallel.sync import broadcast_parameters, check_replicas, make_sync
from minipar.runlog import MetricsLog, choose_run_dir, plot_loss, write_summary
from minipar.tasks import TaskConfig, default_config, get_task, shard_batch


@dataclass
class Run:
    comm: object
    cfg: object
    tcfg: object
    task: object
    data: object
    model: object
    opt: object
    sync: object
    run_dir: str
    per_epoch: int
    total_steps: int
    step: int = 0
    state: object = None
    log: object = None
    evals: list = field(default_factory=list)
    tokens: int = 0
    stop_requested: bool = False
    last_norm: float = 0.0
    train_s: float = 0.0
    notes: list = field(default_factory=list)
    _shards: dict = field(default_factory=dict)

    def clip(self) -> None:
        """Global gradient-norm clipping after the sync (every rank sees the same norm), and
        a replica check every --check-sync steps."""
        params = self.model.parameters()
        self.last_norm = clip_grad_norm(params, self.cfg.clip if self.cfg.clip else 0.0)
        every = self.cfg.check_sync
        if every and (self.step + 1) % every == 0 and self.cfg.sync != "average":
            check_replicas(self.comm, params, self.step + 1)


def task_config(cfg) -> TaskConfig:
    """The task's options: the model's measured defaults, overridden by what was given."""
    given = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if getattr(cfg, f.name) is not None}
    tfields = {f.name for f in dataclasses.fields(TaskConfig)}
    return default_config(cfg.model, **{k: v for k, v in given.items() if k in tfields})


def shard_rows(run, batch) -> list:
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
                                   weights=weights).all_shards()
    return run._shards[key]


def check_shard_weights(cfg, size: int) -> None:
    if cfg.shard == "weighted" and len(cfg.weights()) != size:
        raise ConfigError(f"--shard-weights has {len(cfg.weights())} entries for {size} ranks")


def setup(comm, cfg) -> Run:
    """Device, data, model, optimizer and sync, identical on every rank; resume if asked."""
    try:
        B.set_device(cfg.device)
    except B.BackendError as exc:
        raise ConfigError(str(exc)) from None
    B.set_default_dtype(cfg.dtype)
    task = get_task(cfg.model)
    tcfg = task_config(cfg)
    check_shard_weights(cfg, comm.size)
    if tcfg.batch_size < comm.size:
        raise ConfigError(f"--batch-size {tcfg.batch_size} is smaller than the {comm.size} "
                          f"ranks: every rank needs at least one row of each batch")
    data = task.load_data(tcfg)
    per_epoch = task.steps_per_epoch(data.train, tcfg)
    model = task.build_model(tcfg, len(data.vocab))
    broadcast_parameters(comm, model.parameters())
    opt = task.make_optimizer(model, tcfg)
    sync = make_sync(cfg.sync, comm, model.parameters(), cfg.allreduce, cfg.bucket_kb * 1024,
                     cfg.overlap, cfg.average_every)
    total = cfg.epochs * per_epoch if cfg.epochs else tcfg.steps
    run_dir = choose_run_dir(comm, cfg.resume or cfg.out, cfg.model)
    run = Run(comm, cfg, tcfg, task, data, model, opt, sync, run_dir, per_epoch, total)
    if cfg.resume:
        resume(run)
    run.log = MetricsLog(run_dir if comm.rank == 0 else None, append=bool(cfg.resume))
    if comm.rank == 0 and not cfg.quiet:
        _header(run)
    return run


def _header(run) -> None:
    c, cfg, t = run.comm, run.cfg, run.tcfg
    rows = [len(r) for r in Sharder(t.batch_size, c.size, cfg.shard if cfg.shard != "balanced"
                                    else "contiguous", cfg.shard_policy,
                                    weights=cfg.weights()).all_shards()]
    print(f"minipar: {c.size} rank{'s' if c.size > 1 else ''} ({c.library}); "
          f"{t.model} model, {run.model.num_parameters():,} parameters, {cfg.dtype}", flush=True)
    print(f"data: {run.data.info.get('summary', t.data or 'built-in')}", flush=True)
    print(f"sync {cfg.sync}" + (f" ({cfg.allreduce})" if cfg.sync != "ps" else "")
          + f"; global batch {t.batch_size} rows, per rank {rows}; {run.total_steps} steps "
          f"({run.per_epoch} per epoch); run directory {run.run_dir}", flush=True)
    for note in c.notes + run.notes:
        print(f"note: {note}", flush=True)


def evaluate(run, split=None) -> dict:
    """Mean loss (and the task's figures) on a split, its rows shared out over the ranks."""
    comm, task, cfg = run.comm, run.task, run.tcfg
    split = run.data.valid if split is None else split
    model = run.model
    was = model.training
    model.eval()
    total, n, extra, state = 0.0, 0, 0.0, None
    from minipar.autograd import no_grad
    with no_grad():
        for batch in task._batcher(split, cfg, 0, train=False):
            rows = Sharder(len(batch[0]), comm.size).shard(comm.rank)
            mine = shard_batch(batch, rows)
            if len(mine[0]) == 0:
                continue
            s, c, state, more = task._eval_batch(model, mine, state)
            total, n = total + s.item(), n + c
            extra += more or 0
    model.train(was)
    buf = np.array([total, n, extra], dtype=np.float64)
    with comm.phase("eval"):
        comm.allreduce(buf)
    return task._metrics(buf[0] / max(buf[1], 1), int(buf[1]), [buf[2]])


# --- checkpoints -------------------------------------------------------------------------
def save_checkpoint(run) -> str | None:
    """Rank 0 writes parameters, optimizer state, step, every rank's RNG state and carried
    LSTM state, the vocabulary and the configuration (see minipar.checkpoint)."""
    comm = run.comm
    mine = {"rng": B.get_rng_state(),
            "state": None if run.state is None else [B.to_numpy(s.data) for s in run.state]}
    with comm.phase("checkpoint"):
        every = comm.gather_obj(mine, 0) if comm.size > 1 else [mine]
    if comm.rank != 0:
        return None
    ranks = {}
    for r, m in enumerate(every):
        if m["state"] is not None:
            ranks[f"r{r}/h"], ranks[f"r{r}/c"] = m["state"]
    meta = {"config": dataclasses.asdict(run.cfg), "model": run.cfg.model, "ranks": comm.size,
            "sync": run.cfg.sync, "epoch": run.step // max(run.per_epoch, 1),
            "vocab": run.data.vocab.to_dict(), "rng": [m["rng"] for m in every]}
    return ckpt.save(run.run_dir, run.step, run.model.state_dict(), run.opt.state_dict(),
                     meta, ranks)


def resume(run) -> None:
    """Continue from the run directory's latest checkpoint; refuse one that does not fit."""
    params, optim, meta, ranks = ckpt.load(run.cfg.resume)
    c = run.comm
    if meta.get("model") != run.cfg.model:
        raise CheckpointError(f"{run.cfg.resume}: checkpoint of a {meta.get('model')!r} model, "
                              f"not {run.cfg.model!r}")
    if meta.get("vocab") != run.data.vocab.to_dict():
        raise CheckpointError(f"{run.cfg.resume}: the checkpoint's vocabulary differs from "
                              f"this data's (another corpus or --tokens?)")
    run.model.load_state_dict(params)
    run.opt.load_state_dict(optim)
    run.step = int(meta["step"])
    if meta["ranks"] == c.size:
        B.set_rng_state(meta["rng"][c.rank])
        if f"r{c.rank}/h" in ranks:
            from minipar.autograd import Tensor
            run.state = (Tensor(B.from_numpy(ranks[f"r{c.rank}/h"])),
                         Tensor(B.from_numpy(ranks[f"r{c.rank}/c"])))
    elif run.cfg.sync != "allreduce":
        raise CheckpointError(f"{run.cfg.resume}: written by {meta['ranks']} ranks; resuming "
                              f"on {c.size} ranks works only with --sync allreduce")
    else:
        run.notes.append(f"resumed on {c.size} ranks from {meta['ranks']}: rows are shared out "
                         f"anew, so carried LSTM state restarts from zeros and dropout draws "
                         f"differ; parameters and optimizer state continue exactly")
    if run.step >= run.total_steps:
        run.notes.append(f"the checkpoint is at step {run.step}, already at --steps "
                         f"{run.total_steps}: nothing left to train")


# --- the end of a run --------------------------------------------------------------------
def finish_run(run) -> dict | None:
    comm, cfg, task = run.comm, run.cfg, run.task
    metrics = evaluate(run)
    path = save_checkpoint(run)
    trace = f"{run.run_dir}/trace.json" if cfg.trace else None
    png = f"{run.run_dir}/timeline.png" if cfg.trace else None
    rows = comm.report(chrome=trace, png=png, table=comm.rank == 0 and not cfg.quiet)
    if comm.rank != 0:
        return None
    summary = {"config": dataclasses.asdict(cfg), "ranks": comm.size, "steps": run.step,
               "train_loss": run.log.rows[-1]["loss"] if run.log.rows else None,
               "val_loss": metrics["loss"], "train_s": run.train_s,
               "tokens_per_s": run.tokens / run.train_s if run.train_s else None,
               "per_rank": [{k: r[k] for k in ("rank", "comm_s", "compute_s", "wait_s",
                                               "bytes_sent", "bytes_recv", "msgs_sent")}
                            for r in rows]}
    summary.update({f"val_{k}": v for k, v in metrics.items() if k != "loss"})
    lines = [f"validation: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())]
    if task.kind in ("lstm", "mlp"):
        base = ngram_baseline(run)
        summary["ngram_val_ppl"] = base
        lines.append(f"count-based {run.tcfg.context + 1}-gram (modified Kneser-Ney) on the "
                     f"same split: ppl {base:.4g}")
        if cfg.sample_chars:
            text = task.sample(run.model, run.data.vocab, cfg.sample_chars, 0.8, cfg.seed)
            summary["sample"] = text
            lines.append("sample: " + text.replace("\n", " / "))
    summary["checkpoint"] = path
    write_summary(run.run_dir, summary)
    plot_loss(run.run_dir, run.log.rows, run.evals + [(run.step, metrics["loss"])])
    run.log.close()
    lines.append(f"run directory: {run.run_dir} (summary.json, metrics.jsonl, loss.png, "
                 f"checkpoint/{', trace.json, timeline.png' if cfg.trace else ''})")
    print("\n".join(lines), flush=True)
    return summary


def ngram_baseline(run) -> float:
    """Validation perplexity of a modified Kneser-Ney N-gram (order = context + 1) fitted on
    the same training split, for comparison."""
    from minipar.models.ngram import NGramModel
    try:
        model = NGramModel.fit(run.data.train, run.data.vocab, order=run.tcfg.context + 1,
                               smoothing="kn")
        return float(model.perplexity(run.data.valid)["ppl"])
    except Exception as exc:  # the comparison must never cost the trained model
        run.notes.append(f"N-gram baseline failed: {exc}")
        return math.nan

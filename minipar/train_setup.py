"""Everything around the training loop: building the run, sharding rows, evaluation,
checkpoints and the final report. ``train.py`` holds the loop itself."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from minipar import backend as B
from minipar import checkpoint as ckpt
from minipar import threads
from minipar.errors import CheckpointError, ConfigError, UserError
from minipar.optim import clip_grad_norm
from minipar.parallel.shard import Sharder
from minipar.plugins import get_scheduler
from minipar.parallel.sync import broadcast_parameters, check_replicas, make_sync
from minipar.runlog import MetricsLog, choose_run_dir, plot_loss, write_summary
from minipar.tasks import (TaskConfig, default_config, default_prompt, get_task, join_prompt,
                           shard_batch)


class Divergence(UserError):
    """The loss, the gradients or the parameters stopped being finite numbers. Raised on every
    rank at the same step (the checks read allreduced flags), so it is agreed."""

    agreed = True


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
    stop_requested: str = ""  # the signal that stopped the run (agreed by all ranks)
    last_norm: float = 0.0
    saved_step: int = -1  # the step of the checkpoint on disk (no need to write it again)
    train_s: float = 0.0
    notes: list = field(default_factory=list)
    scheduler: object = None
    local_terms: int = 0  # loss terms (tokens or examples) this rank trained on
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
                                   weights=weights, scheduler=run.scheduler).all_shards()
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
    first = len(next(iter(task._batcher(data.train, tcfg, 0, train=True)))[0])
    if first < comm.size:
        raise ConfigError(f"the training data fills a batch with only {first} rows "
                          f"(examples or streams) for {comm.size} ranks: every rank needs at "
                          f"least one; use fewer ranks or more data")
    scheduler = get_scheduler(cfg.scheduler) if cfg.shard == "balanced" else None
    model = task.build_model(tcfg, len(data.vocab))
    broadcast_parameters(comm, model.parameters())
    # Each rank draws its own dropout masks from here on (one process would draw different
    # masks for different rows too); the parameters above came from the shared seed.
    B.seed([tcfg.seed, 1 + comm.rank])
    opt = task.make_optimizer(model, tcfg)
    sync = make_sync(cfg.sync, comm, model.parameters(), cfg.allreduce, cfg.bucket_kb * 1024,
                     cfg.overlap, cfg.average_every)
    total = cfg.epochs * per_epoch if cfg.epochs else tcfg.steps
    where = cfg.out
    if cfg.resume and not cfg.out:  # continue in the run's own directory
        where = ckpt.resolve(cfg.resume)[1]
    run_dir = choose_run_dir(comm, where, cfg.model)
    run = Run(comm, cfg, tcfg, task, data, model, opt, sync, run_dir, per_epoch, total,
              scheduler=scheduler)
    if cfg.resume:
        resume(run)
    elif os.path.exists(os.path.join(run_dir, "checkpoint", "LATEST")):
        run.notes.append(f"{run_dir} already holds another run's checkpoint: this run's "
                         f"replace it (use --resume {run_dir} to continue that run instead)")
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
    blas = [threads.NOTE] if threads.NOTE else []
    for note in c.notes + blas + run.notes:
        print(f"note: {note}", flush=True)


def _eval_rows(run, batch):
    """This rank's rows of an evaluation batch: every row exactly once (no drop or pad),
    balanced by tokens when training is (--shard balanced)."""
    n = len(batch[0])
    if run.cfg.shard == "balanced" and run.task.kind == "classifier":
        return Sharder(n, run.comm.size, "balanced", weights=batch[1],
                       scheduler=run.scheduler).shard(run.comm.rank)
    return Sharder(n, run.comm.size).shard(run.comm.rank)


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
            rows = _eval_rows(run, batch)
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
    LSTM state, the vocabulary and the configuration (see minipar.checkpoint).

    First every rank checks its parameters are finite (one allreduce of a flag): a diverged
    model must never replace the last good checkpoint."""
    comm = run.comm
    if run.saved_step == run.step:
        return os.path.join(run.run_dir, "checkpoint", f"step-{run.step:08d}")
    bad = np.array([sum(not B.xp.isfinite(p.data).all() for p in run.model.parameters())],
                   dtype=np.float64)
    mine = {"rng": B.get_rng_state(),
            "state": None if run.state is None else [B.to_numpy(s.data) for s in run.state]}
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
    ranks = {}
    for r, m in enumerate(every):
        if m["state"] is not None:
            ranks[f"r{r}/h"], ranks[f"r{r}/c"] = m["state"]
        ranks.update({f"r{r}/{k}": a for k, a in m.get("own", {}).items()})
    epoch, pos = divmod(run.step, max(run.per_epoch, 1))
    meta = {"config": dataclasses.asdict(run.cfg), "model": run.cfg.model, "ranks": comm.size,
            "sync": run.cfg.sync, "epoch": epoch,
            "data_position": {"epoch": epoch, "batch": pos, "per_epoch": run.per_epoch,
                              "rule": "every rank's batches are a function of (epoch, batch)"},
            "vocab": run.data.vocab.to_dict(), "rng": [m["rng"] for m in every]}
    return ckpt.save(run.run_dir, run.step, run.model.state_dict(), run.opt.state_dict(),
                     meta, ranks)


def resume(run) -> None:
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
    rows_same = saved.get("batch_size") == cfg.batch_size and saved.get("shard") == cfg.shard
    if meta["ranks"] == c.size:
        B.set_rng_state(meta["rng"][c.rank])
        if f"r{c.rank}/h" in ranks and rows_same:
            from minipar.autograd import Tensor
            run.state = (Tensor(B.from_numpy(ranks[f"r{c.rank}/h"])),
                         Tensor(B.from_numpy(ranks[f"r{c.rank}/c"])))
        elif f"r{c.rank}/h" in ranks:
            run.notes.append("the rows of a batch changed (--batch-size or --shard): the "
                             "carried LSTM state restarts from zeros")
    elif cfg.sync != "allreduce":
        raise CheckpointError(f"{where}: written by {meta['ranks']} ranks; resuming "
                              f"on {c.size} ranks works only with --sync allreduce")
    else:
        run.notes.append(f"resumed on {c.size} ranks from {meta['ranks']}: rows are shared out "
                         f"anew, so carried LSTM state restarts from zeros and dropout draws "
                         f"differ; parameters and optimizer state continue exactly")
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


# --- the end of a run --------------------------------------------------------------------
def finish_run(run) -> dict | None:
    comm, cfg, task = run.comm, run.cfg, run.task
    metrics = evaluate(run)
    path = save_checkpoint(run)
    trace = f"{run.run_dir}/trace.json" if cfg.trace else None
    png = f"{run.run_dir}/timeline.png" if cfg.trace else None
    terms = comm.allgather_obj(run.local_terms) if comm.size > 1 else [run.local_terms]
    rows = comm.report(chrome=trace, png=png, table=comm.rank == 0 and not cfg.quiet)
    if comm.rank != 0:
        return None
    shares = imbalance(terms, rows)
    summary = {"config": dataclasses.asdict(cfg), "ranks": comm.size, "steps": run.step,
               "train_loss": run.log.rows[-1]["loss"] if run.log.rows else None,
               "val_loss": metrics["loss"], "train_s": run.train_s,
               "tokens_per_s": run.tokens / run.train_s if run.train_s else None,
               "per_rank": [{k: r[k] for k in ("rank", "comm_s", "compute_s", "wait_s",
                                               "bytes_sent", "bytes_recv", "msgs_sent")}
                            for r in rows]}
    summary.update({f"val_{k}": v for k, v in metrics.items() if k != "loss"})
    summary["imbalance"] = shares
    lines = []
    if comm.size > 1 and not cfg.quiet:
        lines.append(f"shards: loss terms per rank {terms}, largest/smallest "
                     f"{shares['ratio']:.2f}; waiting for other ranks "
                     f"{[round(w, 2) for w in shares['wait_s']]} s")
    lines.append("validation: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    if task.kind in ("lstm", "mlp"):
        base = ngram_baseline(run)
        summary["ngram_val_ppl"] = base
        lines.append(f"count-based {run.tcfg.context + 1}-gram (modified Kneser-Ney) on the "
                     f"same split: ppl {base:.4g}")
        if cfg.sample_chars:
            vocab = run.data.vocab  # python -m minipar.generate RUN prints the same text
            prompt = default_prompt(vocab)
            text = join_prompt(prompt, task.sample(run.model, vocab, cfg.sample_chars, 0.8,
                                                   cfg.seed, prompt), vocab)
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


def imbalance(terms, rows) -> dict:
    """How uneven the work was: loss terms (tokens or examples) per rank, the ratio of the
    largest to the smallest share, and each rank's time waiting for others (from the trace)."""
    lo, hi = min(terms), max(terms)
    return {"terms_per_rank": terms, "ratio": hi / lo if lo else float("inf"),
            "wait_s": [r["wait_s"] for r in rows]}


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

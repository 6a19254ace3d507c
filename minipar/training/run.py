"""Building a training run, identical on every rank: device, data, model, optimizer, sync,
run directory (and resume); and which rows of each batch every rank takes.

The loop is :mod:`minipar.training.loop`, evaluation and the report
:mod:`minipar.training.evaluate`, checkpoints :mod:`minipar.training.resume`."""

from __future__ import annotations

import dataclasses
import os


from minipar.core import backend
from minipar.training import checkpoint as ckpt
from minipar.core.errors import ConfigError
from minipar.training.shard import Sharder
from minipar.planning.policies import get_scheduler
from minipar.training.sync import broadcast_parameters, make_sync
from minipar.training.resume import resume
from minipar.training.run_state import Run
from minipar.training.run_dir import MetricsLog, choose_run_dir
from minipar.training.tasks import TaskConfig, default_config, get_task


def task_config(cfg) -> TaskConfig:
    """The task's options: the model's measured defaults, overridden by what was given."""
    given = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if getattr(cfg, f.name) is not None}
    tfields = {f.name for f in dataclasses.fields(TaskConfig)}
    return default_config(cfg.model, **{k: v for k, v in given.items() if k in tfields})


def check_shard_weights(cfg, size: int) -> None:
    if cfg.shard == "weighted" and len(cfg.weights()) != size:
        raise ConfigError(f"--shard-weights has {len(cfg.weights())} entries for {size} ranks")


def setup(comm, cfg) -> Run:
    """Device, data, model, optimizer and sync, identical on every rank; resume if asked."""
    try:
        backend.set_device(cfg.device or backend.env_device())
    except backend.BackendError as exc:
        raise ConfigError(str(exc)) from None
    backend.set_default_dtype(cfg.dtype)
    task = get_task(cfg.model)
    # the classifier pads a rank's rows to its longest: its time is rows x longest, and
    # balancing that cost pays (docs/benchmarks.md, "Padded rows balanced")
    padded_rows = task.kind in ("classifier", "bow")
    if cfg.shard is None:
        cfg.shard = "balanced" if padded_rows else "contiguous"
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
    scheduler = None
    if cfg.shard == "balanced":
        cfg.scheduler = cfg.scheduler or ("padded" if padded_rows else "lpt")
        scheduler = get_scheduler(cfg.scheduler)
    model = task.build_model(tcfg, len(data.vocab))
    broadcast_parameters(comm, model.parameters())
    # Each rank draws its own dropout masks from here on (one process would draw different
    # masks for different rows too); the parameters above came from the shared seed.
    backend.seed([tcfg.seed, 1 + comm.rank])
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
    run.notes.extend(getattr(cfg, "notes", []))  # options given that have no effect here
    if backend.device != "cpu" and comm.size > 1:
        run.notes.append(f"GPU buffers and MPI: {comm.cuda_note}")
    if cfg.resume:
        resume(run)
    elif os.path.exists(os.path.join(run_dir, "checkpoint", "LATEST")):
        run.notes.append(f"{run_dir} already holds another run's checkpoint: this run's "
                         f"replace it (use --resume {run_dir} to continue that run instead)")
    run.log = MetricsLog(run_dir if comm.rank == 0 else None, append=bool(cfg.resume))
    if comm.rank == 0 and not cfg.quiet:
        _header(run)
    return run


def _header(run: Run) -> None:
    c, cfg, t = run.comm, run.cfg, run.tcfg
    rows = [len(r) for r in Sharder(t.batch_size, c.size, cfg.shard if cfg.shard != "balanced"
                                    else "contiguous", cfg.shard_policy,
                                    weights=cfg.weights()).all_shards()]
    if cfg.shard == "balanced":  # the rows follow each batch's costs
        rows = f"{rows} (balanced per batch by {cfg.scheduler})"
    print(f"minipar: {c.size} rank{'s' if c.size > 1 else ''} ({c.library}); "
          f"{t.model} model, {run.model.num_parameters():,} parameters, {cfg.dtype}"
          + (f" on {backend.device}" if backend.device != "cpu" else ""), flush=True)
    print(f"data: {run.data.info.get('summary', t.data or 'built-in')}", flush=True)
    print(f"sync {cfg.sync}" + (f" ({cfg.allreduce})" if cfg.sync != "ps" else "")
          + f"; global batch {t.batch_size} rows, per rank {rows}; {run.total_steps} steps "
          f"({run.per_epoch} per epoch); run directory {run.run_dir}", flush=True)
    for note in c.notes + run.notes:
        print(f"note: {note}", flush=True)



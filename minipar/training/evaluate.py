"""Evaluation on a split, with its rows shared out over the ranks, and the end-of-run report."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from minipar.autograd import no_grad
from minipar.models.ngram_lm import NGramModel
from minipar.training.resume import save_checkpoint
from minipar.training.run_state import Run
from minipar.training.run_dir import plot_loss, write_summary
from minipar.training.shard import Sharder
from minipar.training.tasks import default_prompt, join_prompt, shard_batch


def _eval_rows(run: Run, batch):
    """This rank's rows of an evaluation batch: every row exactly once (no drop or pad),
    balanced by tokens when training is (--shard balanced)."""
    n = len(batch[0])
    if run.cfg.shard == "balanced" and run.task.kind == "classifier":
        return Sharder(n, run.comm.size, "balanced", weights=batch[1],
                       scheduler=run.scheduler).shard(run.comm.rank)
    return Sharder(n, run.comm.size).shard(run.comm.rank)


def evaluate(run: Run, split=None) -> dict:
    """Mean loss (and the task's figures) on a split, its rows shared out over the ranks."""
    comm, task, cfg = run.comm, run.task, run.tcfg
    split = run.data.valid if split is None else split
    model = run.model
    was = model.training
    model.eval()
    total, n, extra, state = 0.0, 0, 0.0, None
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


# --- the end of a run --------------------------------------------------------------------
def finish_run(run: Run) -> dict | None:
    comm, cfg, task = run.comm, run.cfg, run.task
    metrics = evaluate(run)
    path = save_checkpoint(run)
    trace = f"{run.run_dir}/trace.json" if cfg.trace else None
    png = f"{run.run_dir}/timeline.png" if cfg.trace else None
    terms = comm.allgather_obj(run.local_terms) if comm.size > 1 else [run.local_terms]
    rows = comm.report(chrome=trace, png=png, table=comm.rank == 0 and not cfg.quiet,
                       steps=cfg.traced_steps())
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
    summary["evals"] = [[step, loss] for step, loss in run.evals]  # --eval-every, in training
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


def ngram_baseline(run: Run) -> float:
    """Validation perplexity of a modified Kneser-Ney N-gram (order = context + 1) fitted on
    the same training split, for comparison."""
    try:
        model = NGramModel.fit(run.data.train, run.data.vocab, order=run.tcfg.context + 1,
                               smoothing="kn")
        return float(model.perplexity(run.data.valid)["ppl"])
    except Exception as exc:  # the comparison must never cost the trained model
        run.notes.append(f"N-gram baseline failed: {exc}")
        return math.nan

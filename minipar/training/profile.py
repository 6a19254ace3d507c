"""A model of ``minipar.train`` as the advisor sees it: a Workload, its compute measured here.

    python -m minipar.training.profile '{"model": "lstm", "hidden": 128}'   # JSON on stdout

``workload(options)`` builds the task, its data and its model exactly as the trainer would
(same defaults, same seed), counts the parameters, takes FLOPs and activation bytes from
``planning/workload.py``'s formulas, and times real steps on the first global batches:

    fb(b)    forward + backward on the first b rows of real batches (the next one each
             step: the classifier's padded lengths differ), b in {b', b'/4, b'/16, b'/64},
             b' = min(B, 256), in a child process with one BLAS thread (a rank among
             others on a host: one core): the median of 5 to 15 steps (at most about a
             second's worth beyond 5) after two warm-up steps; fb(b) = t0 + t1 b is the
             least-squares line through them; cv(b), the spread (standard deviation /
             median) at each b, for the wait on the slowest rank
    fb_full  fb(b') in this process, with all the BLAS threads it has (one rank alone),
             scaled to B along the line
    opt      the optimizer step with clipping and zeroing, median
    data     building one global batch (every rank builds the whole batch), median

For ``--model ngram`` it counts shards of 1, 1/2, 1/4 and 1/8 of the training text: the
seconds and the packed bytes (int64 rows of ids and a count, as the exchange sends them)
per shard give count(N) = t0 + t1 N and bytes(N) = a N^b (distinct n-grams grow slower than
the text).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from minipar.core.errors import ConfigError
from minipar.planning.workload import (Workload, classifier_counts, lstm_counts,
                                       mlp_counts)

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MAX_TIMED_ROWS = 256
WARMUP = 2


def _median(xs) -> float:
    return float(np.median(xs))


def _task_parts(options: dict):
    from minipar.core import backend
    from minipar.training.tasks import default_config, get_task

    opts = {k: v for k, v in options.items() if v is not None}
    kind = opts.pop("model", "lstm")
    cfg = default_config(kind, **opts)
    backend.set_default_dtype(cfg.dtype)
    task = get_task(kind)
    data = task.load_data(cfg)
    model = task.build_model(cfg, len(data.vocab))
    return cfg, task, data, model


def time_steps(options: dict, rows_list, repeats: int = 15, budget: float = 1.0) -> dict:
    """{"fb": {b: seconds}, "opt": seconds, ...} of real steps on the first global batches:
    per b, two warm-up steps, then ``repeats`` timed ones (at least 5 and at most
    ``budget`` seconds' worth), each on the next batch; cv: {b: sd / median}."""
    from minipar.training.tasks import shard_batch
    from minipar.nn.optim import clip_grad_norm

    cfg, task, data, model = _task_parts(options)
    opt = task.make_optimizer(model, cfg)
    batches, fetch = [], []
    it = iter(task.batches(data.train, cfg, 0))
    for _ in range(repeats + WARMUP):  # real batches: lengths differ (classifier)
        t0 = time.perf_counter()
        batch = next(it, None)
        if batch is None:
            break
        fetch.append(time.perf_counter() - t0)
        batches.append(batch)
    if len(batches[0][0]) < cfg.batch_size:
        raise ConfigError(f"the training data fills a batch of only {len(batches[0][0])} "
                          f"rows, not {cfg.batch_size}: use a smaller --batch")
    fb, opt_s, spread = {}, [], {}
    for b in rows_list:
        times, start, i = [], time.perf_counter(), 0
        while len(times) < repeats and (len(times) < 5 or time.perf_counter() - start < budget):
            mine = shard_batch(batches[i % len(batches)], range(b))
            opt.zero_grad()
            t0 = time.perf_counter()
            s, count, _ = task.loss(model, mine, None)
            (s * (1.0 / count)).backward()
            t1 = time.perf_counter()
            clip_grad_norm(model.parameters(), cfg.clip)
            opt.step()
            t2 = time.perf_counter()
            if i >= WARMUP:  # the first steps pay one-off costs (allocation, BLAS start-up)
                times.append(t1 - t0)
                opt_s.append(t2 - t1)
            i += 1
        fb[b] = _median(times)
        spread[b] = float(np.std(times)) / fb[b] if len(times) > 1 else 0.0
    batch = batches[0]
    row_len = int(batch[0].shape[1]) if batch[0].ndim == 2 else 1
    epoch_rows = task.steps_per_epoch(data.train, cfg) * cfg.batch_size
    return {"fb": fb, "opt": _median(opt_s) if opt_s else 0.0, "cv": spread,
            "data": _median(fetch[1:] or fetch),
            "params": model.num_parameters(),
            "row_len": row_len, "epoch_rows": epoch_rows,
            "vocab": len(data.vocab), "cfg": {k: getattr(cfg, k) for k in (
                "model", "embed", "hidden", "layers", "seq_len", "context", "batch_size",
                "dtype", "tie_weights")}}


def _one_core(options: dict, rows_list, repeats: int) -> dict:
    """``time_steps`` in a child process with one BLAS thread."""
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    arg = json.dumps({"options": options, "rows": list(rows_list), "repeats": repeats})
    proc = subprocess.run([sys.executable, "-m", __name__, arg], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        raise ConfigError(f"timing the model failed: {lines[-1]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["fb"] = {int(k): v for k, v in out["fb"].items()}
    out["cv"] = {int(k): v for k, v in out["cv"].items()}
    return out


def fit_line(xs, ys) -> tuple[float, float]:
    """Least squares t0 + t1 x weighted by 1 / y (relative errors: the points span 64x),
    both clipped at 0."""
    if len(set(xs)) < 2:
        return 0.0, float(ys[0]) / max(xs[0], 1)
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    t1, t0 = np.polyfit(x, y, 1, w=1 / np.maximum(y, 1e-12))
    return max(float(t0), 0.0), max(float(t1), 0.0)


def _counts(c: dict, vocab: int, row_len: int) -> dict:
    isz = 8 if c["dtype"] == "float64" else 4
    if c["model"] == "lstm":
        return lstm_counts(vocab, c["embed"], c["hidden"], c["layers"], c["seq_len"], isz,
                           c["tie_weights"])
    if c["model"] == "mlp":
        return mlp_counts(vocab, c["embed"], c["hidden"], c["context"], isz)
    return classifier_counts(vocab, c["embed"], c["hidden"], row_len, isz)


def workload(options: dict, repeats: int = 15, log=None) -> Workload:
    """The Workload of ``minipar.train`` with these options (see the module docstring)."""
    if options.get("model") == "ngram":
        return ngram_workload(options, log)
    from minipar.training.tasks import default_config

    opts = {k: v for k, v in options.items() if v is not None and k != "model"}
    B = default_config(options.get("model", "lstm"), **opts).batch_size
    top = min(B, MAX_TIMED_ROWS)  # the line is straight: larger batches are extrapolated
    # from the batch down to a few rows: 1,024 ranks get only B / 1,024 rows each, where
    # t0 decides the step
    rows = sorted({max(1, top // 4**k) for k in range(4)}, reverse=True)
    if log:
        log(f"timing {options.get('model', 'lstm')} steps on this machine at {rows} rows "
            "(one core, then with this process's BLAS threads)...")
    one = _one_core(options, rows, repeats)
    full = time_steps(options, [top], repeats)
    c = one["cfg"]
    counts = _counts(c, one["vocab"], one["row_len"])
    counts["params"] = one["params"]  # the model's own count, not the formula's
    t0, t1 = fit_line(list(one["fb"]), list(one["fb"].values()))
    fb_full = full["fb"][top] * (t0 + t1 * B) / max(t0 + t1 * top, 1e-12)
    name = (f"{c['model']} E{c['embed']} H{c['hidden']}"
            + (f"x{c['layers']}" if c["model"] != "mlp" else f" n-1={c['context']}")
            + f", B{B}" + (f" T{c['seq_len']}" if c["model"] == "lstm" else ""))
    w = Workload(name=name, batch=B, itemsize=8 if c["dtype"] == "float64" else 4,
                 fb_line=(t0, t1), fb_full=fb_full, opt_s=one["opt"] + one["data"],
                 cv_by_rows={int(b): v for b, v in one["cv"].items()},
                 pipeline=c["model"] == "lstm", settings=c, epoch_rows=one["epoch_rows"],
                 **counts,
                 source=f"measured here: fb({top}) {1e3 * one['fb'][top]:.3g} ms on one "
                        f"core, {1e3 * full['fb'][top]:.3g} ms with this process's BLAS "
                        "threads; "
                        f"fb(b) = {1e3 * t0:.3g} ms + {1e3 * t1:.3g} ms x b, "
                        "spread " + "/".join(f"{100 * v:.2g}" for v in one["cv"].values())
                        + "%")
    return w


def ngram_workload(options: dict, log=None) -> Workload:
    from minipar.data import load_corpus
    from minipar.models.ngram_counts import count_ngrams, split_sentences

    order = int(options.get("order") or (options.get("context") or 4) + 1)
    corpus = load_corpus(options.get("data"), tokens=options.get("tokens") or "char",
                         max_chars=options.get("max_chars"))
    ids = corpus.train
    if log:
        log(f"counting {order}-grams of {len(ids):,} tokens on this machine...")
    sizes, secs, nbytes = [], [], []
    for parts in (1, 2, 4, 8):
        shard = split_sentences(ids, parts)[0]
        t0 = time.perf_counter()
        c = count_ngrams(shard, order)
        secs.append(time.perf_counter() - t0)
        sizes.append(len(shard))
        nbytes.append(sum(g.shape[0] * (g.shape[1] + 1) * 8 for g in c.grams))
    t0, t1 = fit_line(sizes, secs)
    b, log_a = np.polyfit(np.log(sizes), np.log(nbytes), 1)
    ngram = {"tokens": len(ids), "count_line": (t0, t1), "bytes_pow": (float(np.exp(log_a)),
                                                                     float(b))}
    return Workload(name=f"ngram order {order}, {len(ids):,} tokens", params=0, batch=1,
                    ngram=ngram, source=f"counted here: {1e3 * secs[0]:.3g} ms for "
                    f"{sizes[0]:,} tokens, {nbytes[0]:,} bytes of n-grams")


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    if "options" not in spec:
        print(json.dumps(workload(spec).__dict__, default=str))
    else:
        res = time_steps(spec["options"], spec["rows"], spec["repeats"])
        print(json.dumps(res))


def gemm_rate(n: int = 512, repeats: int = 5) -> float:
    """This process's float32 matrix-multiply rate, FLOP/s: 2 n^3 / the median of
    ``repeats`` products of two n x n matrices."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / _median(times[1:])


def adam_seconds(params: int, itemsize: int = 4) -> float:
    """Seconds of one Adam step with clipping over ``params`` numbers in one tensor
    (at most 2^25 timed; longer ones in proportion)."""
    from minipar.nn.module import Parameter
    from minipar.nn.optim import Adam, clip_grad_norm

    n = max(1, min(params, 1 << 25))
    dtype = np.float64 if itemsize == 8 else np.float32
    p = Parameter(np.zeros(n, dtype))
    p.grad = np.ones(n, dtype)
    opt = Adam([p], lr=1e-3)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        clip_grad_norm([p], 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return _median(times[1:]) * params / n


def counted_workload(name: str, counts: dict, batch: int, itemsize: int = 4,
                     rate: float | None = None) -> Workload:
    """A Workload from counts alone: fb(b) = F b / R, R this machine's GEMM rate (an upper
    bound on speed: small recurrent steps run far below it), opt timed on P numbers."""
    rate = rate or gemm_rate()
    t1 = counts["flops_per_row"] / rate
    return Workload(name=name, batch=batch, itemsize=itemsize, fb_line=(0.0, t1),
                    opt_s=adam_seconds(counts["params"], itemsize), **counts,
                    source=f"{counts['flops_per_row']:.3g} FLOPs per row at "
                           f"{rate / 1e9:.3g} GFLOP/s (float32 GEMM here; real steps are "
                           "slower)")

"""The LSTM against the count 5-gram: validation perplexity over the training minute.

    python -m minipar.bench race [--ranks 4] [--eval-every 100] [--png docs/img/race.png]
        [--seeds 0,1,2] [--json] [-- more minipar.train options]

Runs ``mpiexec -n RANKS python -m minipar.train`` (the LSTM's defaults unless options are
given after ``--``) with ``--eval-every``, and reads its run directory: the validation loss
at every evaluation (``summary.json``'s ``evals`` and the final one), the seconds of
training up to that step (the sum of ``step_s`` in ``metrics.jsonl``; the evaluations
themselves are not counted), and the perplexity of the modified Kneser-Ney N-gram fitted
on the same split. It prints the curve, the wall time of the whole command, and the first
evaluation where the LSTM is below the N-gram (the crossing), or says that it never is.
With ``--seeds`` the command runs once per seed (``--seed S``), the picture has a curve
for each, and the end says for how many seeds the LSTM ends below the N-gram: one run's
margin can be smaller than the spread between seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from minipar.comm import launch


def run(ranks: int, every: int, extra: list[str]) -> dict:
    out = tempfile.mkdtemp(prefix="minipar-race-")
    cmd = [launch.find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "minipar.train",
           "--eval-every", str(every), "--quiet", "--sample-chars", "0", "--out", out, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    shutil.rmtree(out, ignore_errors=True)
    seconds, at = {}, 0.0
    for r in rows:
        at += r["step_s"]
        seconds[r["step"]] = at
    evals = summary["evals"] + [[summary["steps"], summary["val_loss"]]]
    curve = [{"step": s, "train_s": seconds[s], "ppl": math.exp(loss)} for s, loss in evals]
    ngram = summary["ngram_val_ppl"]
    cross = next((p for p in curve if p["ppl"] < ngram), None)
    return {"command": "mpiexec -n {} python -m minipar.train {}".format(
                ranks, " ".join(["--eval-every", str(every), *extra])),
            "wall_s": wall, "curve": curve, "ngram_ppl": ngram, "crossing": cross}


def title(results: list[dict]) -> str:
    """The command that made the curves (``--seed S`` standing for each run's seed)."""
    command = results[0]["command"]
    if len(results) > 1:
        command = re.sub(r" --seed \d+$", "", command) + " --seed S"
    return command


def draw(path: str, results: list[dict]) -> None:
    """One curve per run (per seed), the N-gram's perplexity as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for res in results:
        xs = [p["train_s"] for p in res["curve"]]
        label = "LSTM, validation" if res.get("seed") is None else f"LSTM, seed {res['seed']}"
        ax.plot(xs, [p["ppl"] for p in res["curve"]], "o-", ms=4, label=label)
        if res["crossing"] and len(results) == 1:
            ax.axvline(res["crossing"]["train_s"], color="#999999", lw=0.8)
    ngram = results[0]["ngram_ppl"]
    ax.axhline(ngram, color="#e15759", ls="--",
               label=f"count 5-gram (modified Kneser-Ney): {ngram:.3f}")
    ppl = [p["ppl"] for res in results for p in res["curve"]]
    ax.set_ylim(min(ngram, min(ppl)) * 0.95, min(max(ppl), 3 * ngram))
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("validation perplexity (characters)")
    ax.set_title(title(results), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench race", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--png", help="draw the curve and the N-gram's line here")
    ap.add_argument("--seeds", help="run once per seed (--seed S), e.g. 0,1,2")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="more minipar.train options (after --)")
    a = ap.parse_args(argv)
    if a.ranks < 1 or a.eval_every < 1:
        ap.error("--ranks and --eval-every must be at least 1")
    try:
        seeds = [int(x) for x in a.seeds.split(",") if x.strip()] if a.seeds else [None]
    except ValueError:
        ap.error(f"--seeds must be whole numbers separated by commas, got {a.seeds!r}")
    if not seeds:
        ap.error("--seeds names no seed")
    results = []
    for seed in seeds:
        extra = a.extra if seed is None else [*a.extra, "--seed", str(seed)]
        results.append(dict(run(a.ranks, a.eval_every, extra), seed=seed))
    if a.png:
        draw(a.png, results)
    if a.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1))
        return 0
    for res in results:
        report(res)
    if len(results) > 1:
        print(summary_line(results))
    return 0


def report(res: dict) -> None:
    print(res["command"])
    print("| step | seconds of training | validation ppl |")
    print("|---:|---:|---:|")
    for p in res["curve"]:
        print(f"| {p['step']} | {p['train_s']:.1f} | {p['ppl']:.3f} |")
    cross = res["crossing"]
    print(f"\ncount 5-gram on the same split: {res['ngram_ppl']:.3f}; whole command "
          f"{res['wall_s']:.1f} s")
    print(f"the LSTM is below it from step {cross['step']} ({cross['train_s']:.1f} s of "
          f"training)" if cross else "the LSTM never gets below it in this run")
    print()


def summary_line(results: list[dict]) -> str:
    """How many seeds end below the N-gram, and the final perplexities."""
    ends = [res["curve"][-1]["ppl"] for res in results]
    below = sum(e < res["ngram_ppl"] for e, res in zip(ends, results))
    return (f"seeds {', '.join(str(r['seed']) for r in results)}: the LSTM ends at "
            f"{', '.join(f'{e:.3f}' for e in ends)} (median {statistics.median(ends):.3f}) "
            f"against the 5-gram's {results[0]['ngram_ppl']:.3f}: below it for {below} of "
            f"{len(results)}")

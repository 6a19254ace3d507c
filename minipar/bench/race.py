"""The LSTM against the count 5-gram: validation perplexity over the training minute.

    python -m minipar.bench race [--ranks 4] [--eval-every 100] [--png docs/img/race.png]
        [--json] [-- more minipar.train options]

Runs ``mpiexec -n RANKS python -m minipar.train`` (the LSTM's defaults unless options are
given after ``--``) with ``--eval-every``, and reads its run directory: the validation loss
at every evaluation (``summary.json``'s ``evals`` and the final one), the seconds of
training up to that step (the sum of ``step_s`` in ``metrics.jsonl``; the evaluations
themselves are not counted), and the perplexity of the modified Kneser-Ney N-gram fitted
on the same split. It prints the curve, the wall time of the whole command, and the first
evaluation where the LSTM is below the N-gram (the crossing), or says that it never is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
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


def draw(path: str, res: dict) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [p["train_s"] for p in res["curve"]]
    ax.plot(xs, [p["ppl"] for p in res["curve"]], "o-", label="LSTM, validation")
    ax.axhline(res["ngram_ppl"], color="#e15759", ls="--",
               label=f"count 5-gram (modified Kneser-Ney): {res['ngram_ppl']:.3f}")
    if res["crossing"]:
        ax.axvline(res["crossing"]["train_s"], color="#999999", lw=0.8)
    ax.set_ylim(min(res["ngram_ppl"], min(p["ppl"] for p in res["curve"])) * 0.95,
                min(max(p["ppl"] for p in res["curve"]), 3 * res["ngram_ppl"]))
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("validation perplexity (characters)")
    ax.set_title(res["command"], fontsize=8)
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
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="more minipar.train options (after --)")
    a = ap.parse_args(argv)
    if a.ranks < 1 or a.eval_every < 1:
        ap.error("--ranks and --eval-every must be at least 1")
    res = run(a.ranks, a.eval_every, a.extra)
    if a.png:
        draw(a.png, res)
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
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
    return 0

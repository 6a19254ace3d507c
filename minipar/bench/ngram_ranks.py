"""N-gram model end to end on 1, 2, 4 ranks against KenLM's lmplz, with stage times and RSS.

    python -m minipar.bench ngram_ranks [--words 2700000] [--ranks 1,2,4] [--lmplz PATH]
                                        [--repeat 3] [--order 5] [--json]

The corpus is the Python standard library's own sources (``bench ngram``'s text, normalised,
one line a sentence), written to a file in a temporary folder. Each run is
``python -m minipar.ngram fit FILE --order N --arpa OUT --json`` (under ``mpiexec -n P``
for P > 1) and, with ``--lmplz``, ``lmplz -o N -S 1G --text FILE --arpa OUT``. Timed: wall
seconds of the whole command (median of ``--repeat``), and the peak RSS of its largest
process (the biggest rank; ``getrusage`` of the waited-for children, taken in a fresh
wrapper process per run). Printed: tokens/s (tokens over the median wall time), the ratios
minipar / lmplz and P ranks / 1 rank, rank 0's seconds and peak RSS at the end of each
stage (from the run's --json: read, vocab, count, exchange, adjust = the adjusted counts,
discount, estimate = probabilities and backoffs, write), and whether the ARPA files of
every P are byte for byte the same.

One process runs twice: as it is (it formats the ARPA lines in as many threads as it has
cores, ``threads.budget()``) and on one thread (``OPENBLAS_NUM_THREADS=1``, "1t"). The
one-thread run gives the bound that every core's share of work sets on P ranks, with
T = the one process's wall time, T1 = the one-thread run's, O1 = its time outside the
stages and O_P = the P-rank run's (start-up and end: the median over the runs of wall less
stages; under mpiexec it includes launching the ranks and MPI's start and end),
c = min(P, cores):

    speed-up of P ranks over one process <= T / (O_P + (T1 - O1) / c)

(every stage of the one-thread run split perfectly over c cores, nothing exchanged, the
start-up as the P ranks took it).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile

from minipar.bench.ngram import stdlib_text
from minipar.core.errors import UserError
from minipar.data.tokenize import normalize_text

STAGES = ("read", "vocab", "count", "exchange", "adjust", "discount", "estimate", "write")
_WRAP = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
         "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
         "w = time.perf_counter() - t; "
         "print(json.dumps({'rc': p.returncode, 'wall': w, 'out': p.stdout, 'err': p.stderr, "
         "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def timed(cmd: list[str], env=None) -> dict:
    """Run ``cmd`` in a fresh wrapper; wall seconds, peak RSS (MB) of its largest process."""
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True,
                          env=env)
    r = json.loads(proc.stdout)
    if r["rc"] != 0:
        raise UserError(f"{' '.join(cmd)} failed ({r['rc']}): {r['err'].strip()[-400:]}")
    return r


def _mpiexec() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpiexec"


def run(a) -> dict:
    text, source = stdlib_text(a.words)
    out = {"benchmark": "ngram_ranks", "source": source, "order": a.order,
           "repeat": a.repeat, "runs": []}
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(normalize_text(text))
        out["bytes"] = os.path.getsize(corpus)
        jobs = []
        if a.lmplz:
            jobs.append(("lmplz", 1, None, [a.lmplz, "-o", str(a.order), "-S", "1G", "--text",
                                            corpus, "--arpa", os.path.join(d, "kenlm.arpa"),
                                            "-T", d]))
        one = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        for p in a.ranks:
            cmd = [sys.executable, "-m", "minipar.ngram", "fit", corpus, "--order",
                   str(a.order), "--arpa", os.path.join(d, f"p{p}.arpa"), "--json", "--quiet"]
            jobs.append(("minipar", p, None, ([_mpiexec(), "-n", str(p)] if p > 1 else []) + cmd))
            if p == 1:  # the same, on one thread: the one-core baseline and the bound
                jobs.append(("minipar", p, one, [*cmd[:-3], os.path.join(d, "t1.arpa"),
                                                 *cmd[-2:]]))
        for name, p, env, cmd in jobs:
            runs = [timed(cmd, env) for _ in range(a.repeat)]
            row = {"program": name, "ranks": p, "one_thread": env is not None,
                   "seconds": round(statistics.median(r["wall"] for r in runs), 3),
                   "peak_rss_mb": round(max(r["rss_mb"] for r in runs), 1)}
            if name == "minipar":
                res = [json.loads(r["out"].strip().splitlines()[-1]) for r in runs]
                # outside the stages: start-up and end, each run's wall less its stages
                row["outside_s"] = round(statistics.median(
                    r["wall"] - sum(v for v in x["stages"].values() if v == v)
                    for r, x in zip(runs, res)), 3)
                res = res[-1]
                row.update(tokens=res["tokens"], stages=res["stages"], peak_mb=res["peak_mb"])
                row["tokens_per_s"] = round(res["tokens"] / row["seconds"])
            out["runs"].append(row)
            print(f"  {name} on {p} rank{'s' if p > 1 else ''}"
                  f"{', one thread' if env else ''}: {row['seconds']:.2f} s, "
                  f"{row['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
        arpas = [os.path.join(d, f"p{p}.arpa") for p in a.ranks]
        arpas += [os.path.join(d, "t1.arpa")] if 1 in a.ranks else []
        out["arpa_identical"] = all(filecmp.cmp(arpas[0], x, shallow=False) for x in arpas)
    return out


def _print(out) -> None:
    print(f"{out['source']}: {out['bytes'] / 1e6:.1f} MB, order {out['order']}, median of "
          f"{out['repeat']}")
    rows = out["runs"]
    ref = next((r for r in rows if r["program"] == "lmplz"), None)
    one = next((r for r in rows if r["program"] == "minipar" and r["ranks"] == 1
                and not r.get("one_thread")), None)
    print(f"{'program':<8} {'P':>2} {'wall s':>7} {'tokens/s':>9} {'RSS MB':>7} {'vs lmplz':>8} "
          f"{'vs P=1':>7}")
    for r in rows:
        vs_k = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else "-"
        vs_1 = f"{one['seconds'] / r['seconds']:.2f}x" if one and r["program"] == "minipar" else "-"
        rate = f"{r['tokens_per_s']:,}" if "tokens_per_s" in r else "-"
        print(f"{r['program']:<8} {_p(r):>2} {r['seconds']:7.2f} {rate:>9} "
              f"{r['peak_rss_mb']:7.0f} {vs_k:>8} {vs_1:>7}")
    mine = [r for r in rows if r["program"] == "minipar"]
    for what, key, fmt in (("seconds", "stages", "8.2f"),
                           ("peak RSS MB so far", "peak_mb", "8.0f")):
        print(f"rank 0, {what}, by stage:\n{'P':>2}  " + " ".join(f"{s:>8}" for s in STAGES))
        for r in mine:
            print(f"{_p(r):>2}  " + " ".join(
                format(r.get(key, {}).get(s, float("nan")), fmt) for s in STAGES))
    print(f"ARPA files of every rank count identical: {out['arpa_identical']}")
    line = bound_line(rows, os.cpu_count() or 1)
    if line:
        print(line)


def _p(r: dict) -> str:
    return f"{r['ranks']}t" if r.get("one_thread") else str(r["ranks"])


def bound_line(rows, cores: int) -> str | None:
    """The bound of the module docstring for each P run, beside what it measured."""
    mine = [r for r in rows if r["program"] == "minipar"]
    t = next((r for r in mine if r["ranks"] == 1 and not r.get("one_thread")), None)
    t1 = next((r for r in mine if r.get("one_thread")), None)
    many = [r for r in mine if r["ranks"] > 1]
    if not (t and t1 and many):
        return None
    s1 = t1["seconds"] - t1["outside_s"]  # the one-thread run's stages
    parts = []
    for r in many:
        c = min(r["ranks"], cores)
        bound = t["seconds"] / (r["outside_s"] + s1 / c)
        parts.append(f"{r['ranks']} ranks {t['seconds'] / r['seconds']:.2f}x (at most "
                     f"{bound:.2f}x on {c} core{'s' if c > 1 else ''}, start-up and end "
                     f"{r['outside_s']:.2f} s)")
    return (f"over one process: {', '.join(parts)}; the bound: the one-thread run's stages "
            f"({s1:.2f} s) split over the cores with nothing exchanged")


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench ngram_ranks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--words", type=int, default=2_700_000, help="corpus words (2.7 million)")
    p.add_argument("--ranks", default="1,2,4", help="rank counts to run (1,2,4)")
    p.add_argument("--order", type=int, default=5, help="N (5)")
    p.add_argument("--repeat", type=int, default=3, help="runs per configuration (3)")
    p.add_argument("--lmplz", help="KenLM's lmplz binary, to compare against")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    try:
        a.ranks = [int(x) for x in a.ranks.split(",")]
    except ValueError:
        raise UserError(f"--ranks {a.ranks!r}: give rank counts like 1,2,4") from None
    if a.words < 1 or a.order < 1 or a.repeat < 1 or min(a.ranks) < 1:
        raise UserError("--words, --order, --repeat and --ranks must be positive")
    if a.lmplz and not os.access(a.lmplz, os.X_OK):
        raise UserError(f"--lmplz {a.lmplz}: not an executable file")
    return a


def main(argv=None) -> int:
    try:
        a = _parse(argv)
        out = run(a)
    except UserError as exc:
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(out))
    else:
        _print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost model against measurement: predicted vs measured allreduce time per algorithm and p.

    mpiexec -n 2 python -m minipar.bench calibrate        # first: alpha, beta, gamma, MPI's times
    python -m minipar.bench costcheck [--ranks 2,4] [--sizes 8,1K,64K,1M,16M,64M] [--iters 20]
        [--algos ring,tree,rd,naive,mpi] [--calibration PATH | --calibration 2=A.json,4=B.json]
        [--calibrate DIR] [--repeat K] [--from 2=p2.json,4=p4.json] [--save DIR] [--out table.md]

For every p in ``--ranks`` this runs (one process, no mpiexec around it)

    mpiexec -n p python -m minipar.bench collectives --json --sizes ... --iters ...

and sets each measured time (``time_us``: the median call on the slowest rank) beside the
alpha-beta-gamma prediction ``costmodel.allreduce_time(algorithm, p, bytes, params)``:

    ratio = measured / predicted        (1.00: exact; 1.25: the model is 25% optimistic)

``--calibration`` is one file for every p, or one per p (calibrate run at that p: with more
ranks than cores, alpha grows); ``--calibrate DIR`` runs calibrate at each p just before
that p's benchmark, so both see the same load on a shared host. ``--from`` reads saved
``collectives --json`` output instead of running it. The summary counts, per p and
algorithm, the sizes above 64 KiB whose ratio lies in [0.75, 1.25] (within 25% of the
prediction).

``--repeat K`` does all of it K times (calibration included, with ``--calibrate``): each
cell shows the median measured time, the median prediction and the median ratio with the
range of the K ratios, so the run-to-run spread of this host stands beside the model's
error; the summary counts a size by its median ratio and also says in how many repeats
it was within 25%, and gives the median and 90th percentile of |ratio - 1| over every
repeat: the model's error with this host's run-to-run spread in it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from minipar.comm import launch
from minipar.core.units import format_bytes, parse_size
from minipar.core.errors import UserError
from minipar.planning import costmodel as cm

DEFAULT_SIZES = "8,1K,64K,1M,16M,64M"  # those of the collectives table in benchmarks.md
THRESHOLD = 64 << 10


def _per_p(text: str | None, ranks, what: str) -> dict:
    """"2=a.json,4=b.json" -> {2: "a.json", 4: "b.json"}; a plain path -> the same for all."""
    if not text:
        return {}
    if "=" not in text:
        return {p: text for p in ranks}
    out = {}
    for item in text.split(","):
        p, _, path = item.partition("=")
        try:
            out[int(p)] = path
        except ValueError:
            raise UserError(f"{what} {text!r}: write P=PATH,P=PATH") from None
    return out


def _bench(p: int, args: list[str], timeout: float) -> str:
    """stdout of ``mpiexec -n p python -m minipar.bench ARGS``."""
    cmd = [launch.find_mpiexec(), "-n", str(p), sys.executable, "-m", "minipar.bench", *args]
    print("running: mpiexec -n " + " ".join([str(p), "python"] + cmd[4:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if proc.returncode != 0:
        raise UserError(f"{args[0]} at p={p} failed ({proc.returncode}): "
                        f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def measure(p: int, sizes: str, iters: int, algos: str, timeout: float) -> list[dict]:
    """Rows of ``collectives --json`` at p ranks."""
    text = _bench(p, ["collectives", "--json", "--sizes", sizes, "--iters", str(iters),
                      "--algos", algos], timeout)
    return json.loads(text[text.index("["):])


def _us(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def compare(rows, params) -> list[dict]:
    """Each measured row with ``predicted_us`` and ``ratio`` (measured / predicted)."""
    out = []
    for r in rows:
        pred = cm.allreduce_time(r["algo"], r["ranks"], r["bytes"], params) * 1e6
        out.append(dict(r, predicted_us=pred, ratio=r["time_us"] / pred if pred > 0 else 0.0))
    return out


def within(ratio: float) -> bool:
    """The target: measured within 25% of the prediction, 0.75 <= ratio <= 1.25."""
    return 0.75 <= ratio <= 1.25


def aggregate(runs) -> list[dict]:
    """K lists of compared rows -> one row per (p, bytes, algo): medians of the measured
    time, prediction and ratio, the lowest and highest ratio (``lo``, ``hi``) and the
    number of repeats within 25% (``ok``)."""
    cells: dict = {}
    for rows in runs:
        for r in rows:
            cells.setdefault((r["ranks"], r["bytes"], r["algo"]), []).append(r)
    out = []
    for (p, n, a), rs in cells.items():
        ratios = [r["ratio"] for r in rs]
        out.append(dict(ranks=p, bytes=n, algo=a, ratio=statistics.median(ratios),
                        time_us=statistics.median(r["time_us"] for r in rs),
                        predicted_us=statistics.median(r["predicted_us"] for r in rs),
                        lo=min(ratios), hi=max(ratios), repeats=len(rs),
                        ok=sum(map(within, ratios)), ratios=ratios))
    return out


def table(rows, params) -> str:
    """One Markdown table per p: a row per size, "measured / predicted (ratio)" per algorithm."""
    p = rows[0]["ranks"]
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    cell = {(r["bytes"], r["algo"]): r for r in rows}
    host = ""
    if params.cache_bytes is not None and params.beta_mem is not None:
        cache = format_bytes(int(params.cache_bytes), 'g')
        host = (f", C {cache}, beta_mem {params.beta_mem * 1e9:.4g} ns/B, "
                f"duplex {params.duplex:.3g}")
    if params.gamma_recv is not None and params.private_bytes:
        host += (f", gamma_recv {params.gamma_recv * 1e9:.4g} ns/B up to "
                 f"{format_bytes(int(params.private_bytes), 'g')}")
    host += f", s {params.slowdown(p):.3g}" if params.slowdown(p) != 1 else ""
    k = max(r.get("repeats", 1) for r in rows)
    which = f"the last of {k} calibrations, " if k > 1 else ""
    lines = [f"p = {p}; parameters: {which}{params.source} (alpha {params.alpha * 1e6:.3g} us, "
             f"beta {params.beta * 1e9:.4g} ns/B, gamma {params.gamma * 1e9:.4g} ns/B{host}); "
             "cells: measured / predicted us (ratio" + ("; range over repeats" if k > 1 else "")
             + ")", "",
             "| bytes | " + " | ".join(algos) + " |", "|---:|" + "---:|" * len(algos)]
    for n in sorted({r["bytes"] for r in rows}):
        cells = []
        for a in algos:
            r = cell.get((n, a))
            if r is None:
                cells.append("-")
                continue
            spread = f"; {r['lo']:.2f}-{r['hi']:.2f}" if r.get("repeats", 1) > 1 else ""
            cells.append(f"{_us(r['time_us'])} / {_us(r['predicted_us'])} "
                         f"({r['ratio']:.2f}{spread})")
        lines.append(f"| {format_bytes(n, 'g')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors(rows) -> list[float]:
    """|ratio - 1| of every repeat of every row (one per row without repeats)."""
    return sorted(abs(x - 1) for r in rows for x in r.get("ratios", [r["ratio"]]))


def _pct(errs, q: float) -> str:
    """The q-quantile of sorted errors (nearest rank), as a percentage."""
    return f"{100 * errs[min(len(errs) - 1, int(q * len(errs)))]:.0f}%" if errs else "-"


def summary(rows) -> str:
    """Sizes above 64 KiB within 25%, the range of ratios there, and the median and 90th
    percentile of |ratio - 1| over every repeat, per algorithm and over all."""
    k = max(r.get("repeats", 1) for r in rows)
    lines = ["| p | algorithm | sizes > 64 KiB within 25% | ratio range there |"
             + (f" size-repeats within 25% (of {k} each) |" if k > 1 else "")
             + " median abs error | 90th pct abs error |",
             "|---:|:---|---:|:---|" + ("---:|" if k > 1 else "") + "---:|---:|"]
    for p in sorted({r["ranks"] for r in rows}):
        for a in dict.fromkeys(r["algo"] for r in rows):
            big = [r for r in rows if r["ranks"] == p and r["algo"] == a
                   and r["bytes"] > THRESHOLD]
            if not big:
                continue
            ratios = [r["ratio"] for r in big]
            ok = sum(map(within, ratios))
            line = f"| {p} | {a} | {ok} of {len(big)} | {min(ratios):.2f} - {max(ratios):.2f} |"
            if k > 1:
                line += f" {sum(r['ok'] for r in big)} of {sum(r['repeats'] for r in big)} |"
            errs = errors(big)
            lines.append(line + f" {_pct(errs, 0.5)} | {_pct(errs, 0.9)} |")
    every = errors([r for r in rows if r["bytes"] > THRESHOLD])
    lines += ["", f"All cells above 64 KiB, every repeat ({len(every)}): |measured / predicted"
              f" - 1| median {_pct(every, 0.5)}, 90th percentile {_pct(every, 0.9)}"]
    return "\n".join(lines)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench costcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="2,4", help="rank counts")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="message sizes (bytes, 64K, 1M)")
    ap.add_argument("--iters", type=int, default=20, help="timed calls per size at most")
    ap.add_argument("--algos", default="ring,tree,rd,naive,mpi")
    ap.add_argument("--calibration", help="calibration JSON, or P=PATH,... one per p")
    ap.add_argument("--from", dest="source", help="P=PATH,...: saved collectives --json output")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mpiexec run")
    ap.add_argument("--out", help="also write the tables (Markdown) here")
    ap.add_argument("--save", help="directory: keep each run's rows as collectives-pP.json "
                    "(for --from)")
    ap.add_argument("--repeat", type=int, default=1, help="run everything K times: median "
                    "and range of the ratios per cell (default 1)")
    ap.add_argument("--calibrate", metavar="DIR", help="calibrate at each p right before its "
                    "benchmark (same host load), saving DIR/calibration-pP.json")
    args = ap.parse_args(argv)
    try:
        ranks = [int(x) for x in args.ranks.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--ranks {args.ranks!r}: give rank counts separated by commas") from None
    for s in args.sizes.split(","):
        parse_size(s)  # bad sizes fail here, not inside mpiexec
    if args.repeat < 1 or (args.repeat > 1 and args.source):
        raise UserError(f"--repeat {args.repeat}: give 1 or more, and not with --from")
    cals = _per_p(args.calibration, ranks, "--calibration")
    saved = _per_p(args.source, ranks, "--from")
    runs: dict = {p: [] for p in ranks}
    for rep in range(args.repeat):
        tag = f"-r{rep + 1}" if args.repeat > 1 else ""
        for p in ranks:
            if args.calibrate and p not in saved:
                cals[p] = str(Path(args.calibrate) / f"calibration-p{p}{tag}.json")
                _bench(p, ["calibrate", "--out", cals[p]], args.timeout)
            params = cm.load(cals.get(p), fallback=False)  # no file: "run calibrate first"
            if p in saved:
                text = Path(saved[p]).read_text()
                rows = json.loads(text[text.index("["):])
            else:
                rows = measure(p, args.sizes, args.iters, args.algos, args.timeout)
                if args.save:
                    Path(args.save).mkdir(parents=True, exist_ok=True)
                    (Path(args.save) / f"collectives-p{p}{tag}.json").write_text(json.dumps(rows))
            runs[p].append((params, compare(rows, params)))
    parts, every = [], []
    for p in ranks:
        params = runs[p][-1][0]  # the table's header shows the last calibration
        rows = aggregate([r for _, r in runs[p]]) if args.repeat > 1 else runs[p][0][1]
        every += rows
        parts.append(table(rows, params))
    parts.append("Sizes above 64 KiB whose measured time is within 25% of the prediction "
                 "(0.75 <= ratio <= 1.25):\n\n" + summary(every))
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"\nwrote {args.out}")
    return 0


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())

"""Predictions of the alpha-beta-gamma model: allreduce times, crossovers, scaling to 1,024.

    python -m minipar.bench predict [--calibration PATH | --preset 10gbe] [--p 2,4,16]
        [--grad-bytes 4M] [--compute-time 0.05] [--scaling weak] [--out-dir DIR]

Prints Markdown tables: the predicted time of every allreduce algorithm per message size
(best marked *), the crossover sizes, and the data-parallel step time and efficiency for
p = 1, 2, 4, ..., 1024. With --out-dir also writes predict_allreduce.png (time against size)
and predict_scaling.png (efficiency against p, every p from 1 to 1024), and the tables as
predict.md. Parameters come from ``python -m minipar.bench calibrate`` (or the defaults);
the presets stand in for a network between machines, where alpha and beta are larger.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minipar.comm import launch
from minipar.core.units import parse_size
from minipar.core.errors import UserError
from minipar.planning import costmodel as cm
from minipar.core.units import format_bytes

SIZES = [8 * 4**k for k in range(12)]  # 8 B .. 32 MiB


def _us(t: float) -> str:
    return f"{t * 1e6:.1f}"


def algorithm_table(p: int, params, sizes=SIZES) -> str:
    algs = [*cm.ALGORITHMS, "mpi"]
    lines = [f"Allreduce on p={p} (us, * = best hand-written)", "",
             "| bytes | " + " | ".join(algs) + " |", "|---:|" + "---:|" * len(algs)]
    for n in sizes:
        best = cm.best_algorithm(p, n, params)
        cells = [_us(cm.allreduce_time(a, p, n, params)) + ("*" if a == best else "")
                 for a in algs]
        lines.append(f"| {format_bytes(n)} | " + " | ".join(cells) + " |")
    segs = cm.crossovers(p, params)
    lines += ["", "best from: " + ", ".join(f"{a} >= {format_bytes(x)}" for x, a in segs)]
    return "\n".join(lines)


def scaling_table(rows, grad_bytes, compute_time, scaling) -> str:
    lines = [f"Data-parallel step ({scaling} scaling), {format_bytes(grad_bytes)} of gradients, "
             f"compute {compute_time * 1e3:.4g} ms per step on one rank", "",
             "| p | algorithm | compute ms | allreduce ms | step ms | efficiency |",
             "|---:|:---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['p']} | {r['algorithm']} | {r['compute'] * 1e3:.3f} | "
                     f"{r['comm'] * 1e3:.3f} | {r['step'] * 1e3:.3f} | "
                     f"{100 * r['efficiency']:.1f}% |")
    return "\n".join(lines)


def plot_allreduce(ps, params, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = [2.0**k for k in range(3, 27)]
    fig = Figure(figsize=(5 * len(ps), 4), layout="constrained")
    axes = fig.subplots(1, len(ps), squeeze=False)[0]
    for ax, p in zip(axes, ps):
        for alg in cm.ALGORITHMS:
            ax.loglog(sizes, [cm.allreduce_time(alg, p, n, params) for n in sizes], label=alg)
        for x, _ in cm.crossovers(p, params)[1:]:
            ax.axvline(x, color="grey", lw=0.6, ls=":")
        ax.set(title=f"allreduce, p={p}", xlabel="bytes per rank", ylabel="seconds")
        ax.legend(fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_scaling(compute_time, grad_bytes, params, scaling, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ps = list(range(1, 1025))
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for alg in [*cm.ALGORITHMS, "best"]:
        rows = cm.dp_scaling(ps, compute_time, grad_bytes, params, alg, scaling)
        style = {"color": "black", "ls": "--", "lw": 1.5} if alg == "best" else {"lw": 1.2}
        ax.semilogx(ps, [r["efficiency"] for r in rows], label=alg, base=2, **style)
    ax.set(title=f"data-parallel efficiency ({scaling}), {format_bytes(grad_bytes)} gradients",
           xlabel="ranks p", ylabel="efficiency T(1)/T(p)" if scaling == "weak" else
           "efficiency T(1)/(p T(p))", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return Path(path)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", help="calibration JSON (default: the saved one)")
    ap.add_argument("--preset", choices=sorted(cm.PRESETS), help="use preset parameters")
    ap.add_argument("--p", default="2,4,16", help="rank counts for the allreduce tables")
    ap.add_argument("--grad-bytes", default="4M", help="gradient bytes per step")
    ap.add_argument("--compute-time", type=float, default=0.05,
                    help="seconds of forward+backward per step on one rank")
    ap.add_argument("--scaling", choices=["weak", "strong"], default="weak")
    ap.add_argument("--algorithm", default="best", choices=["best", *cm.ALGORITHMS, "mpi"])
    ap.add_argument("--out-dir", help="write predict.md and the two PNGs here")
    args = ap.parse_args(argv)
    params = cm.PRESETS[args.preset] if args.preset else cm.load(args.calibration)
    try:
        ps = [int(x) for x in args.p.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--p {args.p!r}: give rank counts separated by commas") from None
    if not ps or min(ps) < 1:
        raise UserError("--p needs rank counts >= 1")
    grad = parse_size(args.grad_bytes)
    head = (f"parameters ({params.source}): alpha {params.alpha * 1e6:.3g} us, "
            f"beta {params.beta * 1e9:.4g} ns/B, gamma {params.gamma * 1e9:.4g} ns/B")
    rows = cm.dp_scaling([2**k for k in range(11)], args.compute_time, grad, params,
                         args.algorithm, args.scaling)
    parts = [head, *(algorithm_table(p, params) for p in ps),
             scaling_table(rows, grad, args.compute_time, args.scaling)]
    text = "\n\n".join(parts)
    print(text)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "predict.md").write_text(text + "\n")
        a = plot_allreduce(ps, params, out / "predict_allreduce.png")
        b = plot_scaling(args.compute_time, grad, params, args.scaling,
                         out / "predict_scaling.png")
        print(f"\nwrote {out / 'predict.md'}, {a}, {b}")
    return 0


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())

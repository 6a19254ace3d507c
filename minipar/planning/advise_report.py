"""The advisor's answer for a reader: a table per rank count, the recommendations, a plot."""

from __future__ import annotations

from pathlib import Path

from minipar.core.units import format_bytes
from minipar.planning.advise import Advice, epoch_seconds

__all__ = ["text", "plot"]


def _ms(t: float) -> str:
    return f"{t * 1e3:.3g}" if t < 10 else f"{t:.3g} s"


def table(adv: Advice, p: int, measured: dict) -> str:
    rows = sorted((r for r in adv.rows if r.ranks == p), key=lambda r: (not r.fits, r.step))
    show_m = any((r.method, p) in measured for r in rows)
    head = ("| method | step ms | compute | comm | bubble | efficiency | sent/rank | "
            "memory/rank | bound |" + (" measured ms | ratio |" if show_m else ""))
    lines = [f"p = {p}" + (f" (ranks share {adv.network.cores} cores: compute x"
                           f"{adv.network.slowdown(p):.3g})"
                           if adv.network.slowdown(p) > 1 else ""), "", head,
             "|:---|" + "---:|" * 8 + ("---:|---:|" if show_m else "")]
    for r in rows:
        mark = " *" if adv.best.get(p) is r else (" (inexact)" if not r.exact else "")
        cells = [r.method + mark, _ms(r.step), _ms(r.compute), _ms(r.comm), _ms(r.bubble),
                 f"{100 * r.efficiency:.0f}%", format_bytes(int(r.bytes_sent), ".3g"),
                 format_bytes(int(r.memory), ".3g"), r.bound]
        if show_m:
            m = measured.get((r.method, p))
            cells += [_ms(m), f"{m / r.step:.2f}"] if m else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured_lines(adv: Advice, measured: dict) -> list[str]:
    """Per p with --measure runs: the fastest exact method measured against the recommended
    one (one run each: on a shared host a few percent is noise)."""
    out = []
    for p in sorted(adv.best):
        exact = {r.method for r in adv.rows if r.ranks == p and r.exact}
        runs = {m: t for (m, q), t in measured.items() if q == p and m in exact}
        best = adv.best[p]
        if p == 1 or len(runs) < 2 or best is None or best.method not in runs:
            continue
        fastest = min(runs, key=runs.get)
        mine = runs[best.method]
        verdict = ("the recommendation was the fastest" if fastest == best.method else
                   f"the recommendation {best.method} took {mine * 1e3:.3g} ms "
                   f"({mine / runs[fastest]:.2f}x)")
        out.append(f"  measured at p={p} ({len(runs)} methods run): fastest {fastest} "
                   f"{runs[fastest] * 1e3:.3g} ms; {verdict}")
    return out


def text(adv: Advice, measured: dict | None = None, verbose: bool = False) -> str:
    """Header, a table per p (ms; * = recommended), recommendations, crossovers, caveats."""
    measured = measured or {}
    w = adv.workload
    head = [f"model: {w.name}; {w.params:,} parameters, "
            f"{format_bytes(int(w.grad_bytes), '.3g')} of gradients per step"
            if w.ngram is None else f"model: {w.name}",
            f"compute: {w.source}", f"network: {adv.network.source}"]
    if adv.memory:
        head.append(f"memory per rank: {format_bytes(int(adv.memory), '.3g')}")
    parts = ["\n".join(head)]
    parts += [table(adv, p, measured) for p in sorted(adv.best)]
    rec = ["Recommendation (the fastest exact method that fits):"]
    for p in sorted(adv.best):
        rec.append(f"  p={p}: {adv.reasons[p]}")
    if w.epoch_rows and w.ngram is None:
        rec.append(f"  one epoch ({w.epoch_rows:,} rows, {-(-w.epoch_rows // w.batch):,} "
                   "steps): " + ", ".join(f"{epoch_seconds(adv, adv.best[p]):.3g} s at p={p}"
                                          for p in sorted(adv.best) if adv.best[p]))
    for a, b, m, n in adv.crossovers:
        rec.append(f"  crossover: {m} up to p={a}, {n} from p={b}")
    rec += measured_lines(adv, measured)
    sgd = [r for r in adv.rows if not r.exact]
    if sgd:
        rec.append(f"  note: {sgd[0].caveat}")
    parts.append("\n".join(rec))
    if adv.skipped and verbose:
        parts.append("Not possible:\n" + "\n".join(
            f"  p={p} {m}: {why}" for m, p, why in adv.skipped))
    elif adv.skipped:
        whys = sorted({why for _, _, why in adv.skipped})
        parts.append(f"Not possible ({len(adv.skipped)} rows, --verbose lists them): "
                     + "; ".join(whys[:3]) + ("; ..." if len(whys) > 3 else ""))
    return "\n\n".join(parts)


def plot(adv: Advice, path, measured: dict | None = None) -> Path:
    """Predicted step time against ranks, one line per method family (measured: dots)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measured = measured or {}
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ps = sorted(adv.best)
    families: dict = {}
    for r in adv.rows:
        if r.fits:
            key = r.method.split(" M=")[0].split(", ")[0]
            key = "grid (data x pipeline)" if key.startswith("grid") else key
            families.setdefault(key, {})[r.ranks] = min(
                r.step, families.get(key, {}).get(r.ranks, float("inf")))
    one = families.pop("one process", {})
    colors = iter(__import__("matplotlib").colormaps["tab20"].colors)
    for name, pts in sorted(families.items()):
        xs = sorted(set(pts) | set(one))
        ys = [pts.get(x, one.get(x)) for x in xs]
        ax.plot(xs, ys, marker=".", lw=1.2, label=name, ls="--" if "SGD" in name else "-",
                color=next(colors))
    best = [(p, adv.best[p].step) for p in ps if adv.best[p]]
    if best:
        ax.plot(*zip(*best), color="black", lw=2.5, alpha=0.35, label="recommended")
    if measured:
        ax.scatter([p for _, p in measured], list(measured.values()), color="red", zorder=5,
                   label="measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="ranks p", ylabel="seconds per step",
           title=f"{adv.workload.name}: predicted step time ({adv.network.name})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    FigureCanvasAgg(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path

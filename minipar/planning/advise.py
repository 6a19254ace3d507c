"""Which parallel method, at which rank count: the cost model's answer, ranked and explained.

For every candidate rank count p, ``advise`` predicts every method (``planning/methods.py``)
and recommends the fastest that is exact (the one-process gradient) and fits the memory
per rank; MPI's own allreduce where it was not calibrated (priced as the best of the four
hand-written ones, marked "assumed") only when nothing else is left. Local SGD is listed
with its step time and its caveat but never recommended: it trains a different model. The
reason is one sentence built from the numbers of the winner and the runner-up: what bounds
the step, how many bytes move, and by how much it wins. Where the recommendation changes
from one p to the next, the crossover is named.

Networks (``network``): this machine's calibration (``bench calibrate``; ranks share its
cores), or a named preset with one rank per core on hosts joined by that network, or
``alpha=5us,beta=0.1ns/B`` (gamma, the add rate, is always this machine's).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from minipar.core.errors import ConfigError
from minipar.core.units import format_bytes
from minipar.planning import costmodel as cm
from minipar.planning.methods import Network, Prediction, candidates
from minipar.planning.workload import Workload

__all__ = ["PRESETS", "network", "calibration_paths", "advise", "Advice", "rows_json",
           "epoch_seconds"]

# The cost model's presets (costmodel.PRESETS), by the names a user types, and the
# source of their figures
PRESETS = {
    "shared-memory": (cm.DEFAULT, "ping-pong between two ranks on one 2-vCPU host "
                      "(minipar.bench calibrate, mpi4py buffer calls): 1.5 us, 7.7 GB/s"),
    "10GbE": (cm.PRESETS["10gbe"], "10 Gbit/s Ethernet: 1.25 GB/s line rate, about 1.1 GB/s "
              "after TCP/IP framing; MPI over TCP adds tens of microseconds per message"),
    "100Gb-IB": (cm.PRESETS["ib100"], "100 Gbit/s (EDR) InfiniBand: 12.5 GB/s line rate, "
                 "about 11 GB/s and a few microseconds in MPI ping-pong (typical OSU "
                 "micro-benchmark figures)"),
}
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _parse_time(text: str, what: str) -> float:
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(s|ms|us|ns)?(/B)?\s*", text)
    if not m:
        raise ConfigError(f"--network: cannot read {what}={text!r}: write e.g. "
                          "alpha=5us,beta=0.1ns/B")
    try:
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    except ValueError:
        raise ConfigError(f"--network: cannot read {what}={text!r}") from None


def calibration_paths(text: str | None) -> dict:
    """``"a.json"`` -> {0: "a.json"} (for every p); ``"2=a.json,4=b.json"`` -> {2: .., 4: ..}."""
    if not text:
        return {}
    if "=" not in text:
        return {0: text}
    out = {}
    for item in text.split(","):
        p, _, path = item.partition("=")
        if not p.strip().isdigit() or int(p) < 1 or not path:
            raise ConfigError(f"--calibration {text!r}: give a path, or P=PATH,P=PATH")
        out[int(p)] = path
    return out


def network(spec: str, calibration=None) -> Network:
    """``calibrated``, a preset name, or ``alpha=..,beta=..``. ``calibration``: a path,
    ``"P=PATH,..."`` or {p: path} of calibrations made at those p (the closest p below is
    used)."""
    paths = calibration if isinstance(calibration, dict) else calibration_paths(calibration)
    local = {p: cm.load(path, fallback=False) for p, path in paths.items()}
    base = local[min(local)] if local else cm.load()
    cores = os.cpu_count() or 1
    if spec == "calibrated":
        src = base.source if base.source != "defaults" else (
            "defaults (no calibration on this machine: run mpiexec -n 2 python -m "
            "minipar.bench calibrate)")
        if len(local) > 1:
            src = "calibrations at p = " + ", ".join(map(str, sorted(local)))
        return Network("calibrated", base, f"this machine, {cores} cores: {src}", cores,
                       {p: c for p, c in local.items() if p})
    lower = {k.lower(): k for k in PRESETS}
    if spec.lower() in lower:
        name = lower[spec.lower()]
        preset, src = PRESETS[name]
        alpha, beta = preset.alpha, preset.beta
    elif "=" in spec:
        given = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        unknown = set(given) - {"alpha", "beta"}
        if unknown or len(given) != 2:
            raise ConfigError(f"--network {spec!r}: give alpha=TIME,beta=TIME/B "
                              "(e.g. alpha=5us,beta=0.1ns/B)")
        alpha, beta = (_parse_time(given[k], k) for k in ("alpha", "beta"))
        name, src = spec, "given on the command line"
    else:
        raise ConfigError(f"unknown network {spec!r}: use calibrated, "
                          f"{', '.join(PRESETS)}, or alpha=5us,beta=0.1ns/B")
    params = cm.CostParams(alpha=alpha, beta=beta, gamma=base.gamma, source=src)
    return Network(name, params, f"{name}: {src}; adds at this machine's "
                   f"{base.gamma * 1e9:.3g} ns/B; one rank per core")


@dataclass
class Advice:
    workload: Workload
    network: Network
    memory: float | None
    rows: list              # every Prediction that can run
    skipped: list           # (method, p, why) of those that cannot
    best: dict              # p -> Prediction recommended (None: nothing fits)
    reasons: dict           # p -> one sentence
    crossovers: list        # (p_from, p_to, method_before, method_after)


def _family(r: Prediction) -> str:
    """The method without its tuning: bucket size, micro-batch count."""
    return r.method.split(" M=")[0].split(", ")[0]


def _keep_best(rows: list[Prediction]) -> list[Prediction]:
    """One row per method family (bucket sizes, micro-batch counts): its fastest."""
    best: dict = {}
    for r in rows:
        key = (_family(r), r.ranks)
        if key not in best or r.step < best[key].step:
            best[key] = r
    return list(best.values())


def _reason(win: Prediction, rows: list[Prediction], w: Workload) -> str:
    g = format_bytes(int(w.grad_bytes))
    base = _family(win).removesuffix(" +overlap")
    others = sorted((r for r in rows if _family(r).removesuffix(" +overlap") != base
                     and r.exact and r.fits and "(assumed)" not in r.method),
                    key=lambda r: r.step)
    if win.method == "one process":
        return ("one rank: nothing to exchange" if w.ngram else
                f"one rank: {w.batch} rows, nothing to exchange")
    if w.ngram:  # one count of the whole text, not a training step
        g = f"{format_bytes(int(win.bytes_sent), '.3g')} of n-grams sent per rank"
    ms = {"compute": win.compute + win.bubble, "messages": win.latency,
          "bytes": win.comm - win.latency}
    parts = ", ".join(f"{k} {1e3 * v:.3g}" for k, v in ms.items() if v > 0)
    what = g if w.ngram else f"{g} of gradients per step"
    text = (f"{win.method}: {what}, {win.bound}-bound ({parts} of "
            f"{1e3 * win.step:.3g} ms)")
    if win.bound == "bandwidth":
        text += f", {format_bytes(int(win.bytes_sent), '.3g')} sent per rank"
    if win.bubble:
        text += f", bubble {100 * win.bubble / win.step:.0f}%"
    if others:
        nxt = others[0]
        ratio = nxt.step / win.step
        text += (f"; {ratio:.2f}x faster than {nxt.method}" if ratio >= 1.02 else
                 f"; within 2% of {nxt.method}: the model cannot tell them apart")
    unfit = [r for r in rows if not r.fits]
    if unfit and not any(r.fits for r in rows if not r.method.startswith(("gpipe", "1f1b",
                                                                           "grid"))):
        text += "; a full replica does not fit in memory, only a pipeline does"
    return text


def advise(w: Workload, ranks, net: Network, memory: float | None = None,
           buckets=(1 << 20,), every=(4,)) -> Advice:
    """Predict every method at every p in ``ranks``; recommend per p (module docstring)."""
    if not ranks or min(ranks) < 1:
        raise ConfigError(f"ranks must be >= 1, got {ranks}")
    rows, skipped, best, reasons = [], [], {}, {}
    for p in sorted(set(ranks)):
        every_row = candidates(w, net, p, memory, buckets, every)
        skipped += [(r.method, p, r.skip) for r in every_row if r.skip]
        mine = _keep_best([r for r in every_row if not r.skip])
        rows += mine
        ok = [r for r in mine if r.exact and r.fits]
        # a row priced from an assumption (MPI's own, not calibrated at p) comes last
        best[p] = min(ok, key=lambda r: ("(assumed)" in r.method, r.step)) if ok else None
        if best[p]:
            reasons[p] = _reason(best[p], mine, w)
        elif mine:
            reasons[p] = "nothing fits in the memory per rank: more ranks, or a smaller model"
        else:
            whys = dict.fromkeys(r.skip for r in every_row)
            reasons[p] = "nothing can run: " + "; ".join(list(whys)[:2])
    ps = sorted(best)
    cross = [(a, b, _family(best[a]), _family(best[b])) for a, b in zip(ps, ps[1:])
             if best[a] and best[b] and _family(best[a]) != _family(best[b])
             and best[a].method != "one process"]
    return Advice(w, net, memory, rows, skipped, best, reasons, cross)


def epoch_seconds(adv: Advice, best: Prediction | None) -> float | None:
    """Seconds of one pass over ``epoch_rows`` rows with ``best`` (None: unknown)."""
    w = adv.workload
    if best is None or not w.epoch_rows or w.ngram is not None:
        return None
    return best.step * -(-w.epoch_rows // w.batch)


def rows_json(adv: Advice, measured: dict | None = None) -> dict:
    """The JSON of ``--json``: rows with method, ranks, predicted_s (and measured_s)."""
    measured = measured or {}
    out = []
    for r in adv.rows:
        row = {"method": r.method, "ranks": r.ranks, "predicted_s": r.step,
               "compute_s": r.compute, "comm_s": r.comm, "bubble_s": r.bubble,
               "efficiency": r.efficiency, "bytes_sent": r.bytes_sent,
               "memory_bytes": r.memory, "fits": r.fits, "bound": r.bound, "exact": r.exact,
               "caveat": r.caveat}
        if (r.method, r.ranks) in measured:
            row["measured_s"] = measured[(r.method, r.ranks)]
        out.append(row)
    return {"model": adv.workload.name, "network": adv.network.source,
            "rows": out,
            "recommendation": {str(p): {"method": b.method if b else None,
                                        "reason": adv.reasons[p],
                                        "epoch_s": epoch_seconds(adv, b)}
                               for p, b in adv.best.items()},
            "crossovers": [{"from_ranks": a, "to_ranks": b, "before": m, "after": n}
                           for a, b, m, n in adv.crossovers]}

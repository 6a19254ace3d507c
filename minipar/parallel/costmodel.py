"""The alpha-beta-gamma cost model of point-to-point messages and allreduce algorithms.

Three numbers describe the machine (Hockney's model plus a reduction rate):

    alpha   seconds of latency per message (MPI + Python call overhead)
    beta    seconds per byte sent (1 / bandwidth)
    gamma   seconds per byte reduced (one elementwise add of two buffers)

A message of n bytes takes alpha + beta * n. For an allreduce of n bytes on each of p ranks,
with L = ceil(log2 p), q = 2^floor(log2 p) and r = p - q (full-duplex Sendrecv: sending and
receiving at once costs one message):

    naive  all send to rank 0, it adds, sends back    2(p-1)(alpha + n beta) + (p-1) n gamma
    tree   binomial reduce then binomial broadcast    L (2 alpha + 2 n beta + n gamma)
    rd     recursive doubling on q ranks, plus a      log2(q) (alpha + n beta + n gamma)
           fold-in/copy-out step when r > 0           + [r>0] (2 alpha + 2 n beta + n gamma)
    ring   reduce-scatter then allgather, n/p each    2(p-1) alpha + 2 (p-1)/p n beta
                                                      + (p-1)/p n gamma
    mpi    MPI's own Allreduce: a line a + b n fitted at that p when calibrated, else the
           best of the four above

Every formula is a line a + b n in n, so the best algorithm for each size is the lower
envelope of p lines and the crossover sizes are where two lines meet:
n* = (a2 - a1) / (b1 - b2). Latency terms decide small messages (rd, tree), bandwidth terms
large ones (ring's 2(p-1)/p n beta is within 2x of the n beta any algorithm must pay).

Data-parallel step time with compute time T_c for the per-rank batch and G gradient bytes:

    T(p) = T_c + T_allreduce(p, G)           (weak scaling: the per-rank batch is fixed)
    E(p) = T(1) / T(p)                       parallel efficiency
    strong scaling (fixed global batch):     T(p) = T_c / p + T_allreduce(p, G),
                                             E(p) = T(1) / (p T(p))
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from minipar.errors import ConfigError

__all__ = [
    "CostParams", "DEFAULT", "PRESETS", "ALGORITHMS", "p2p_time", "allreduce_line",
    "allreduce_time", "best_algorithm", "crossovers", "dp_step", "dp_scaling", "fit_line",
    "default_path", "save", "load",
]

ALGORITHMS = ("naive", "tree", "rd", "ring")


@dataclass
class CostParams:
    """Machine parameters: alpha [s], beta [s/byte], gamma [s/byte reduced].

    ``mpi`` maps a rank count p to the fitted line (a, b) of MPI's Allreduce at that p.
    """

    alpha: float
    beta: float
    gamma: float
    mpi: dict = field(default_factory=dict)
    source: str = "defaults"

    def p2p(self, nbytes: float) -> float:
        return self.alpha + self.beta * nbytes


# What calibrate measured at -n 2 on a 2-vCPU development host (shared memory, mpi4py buffer
# calls): used when no calibration file exists. Oversubscribed runs have a larger alpha.
DEFAULT = CostParams(alpha=1.5e-6, beta=1.3e-10, gamma=7.5e-11, source="defaults")

# Beyond one machine: the network, not memory, sets alpha and beta (gamma stays local).
PRESETS = {
    "shm": DEFAULT,
    "10gbe": CostParams(alpha=3e-5, beta=1 / 1.1e9, gamma=7.5e-11, source="preset 10gbe"),
    "ib100": CostParams(alpha=3e-6, beta=1 / 11e9, gamma=7.5e-11, source="preset ib100"),
}


def p2p_time(nbytes: float, params: CostParams = DEFAULT) -> float:
    """alpha + beta * n."""
    return params.alpha + params.beta * nbytes


def allreduce_line(algorithm: str, p: int, params: CostParams = DEFAULT) -> tuple[float, float]:
    """(a, b) with T(n) = a + b n for ``algorithm`` on p ranks (formulas in the module doc)."""
    al, be, ga = params.alpha, params.beta, params.gamma
    if p < 1:
        raise ConfigError(f"p must be >= 1, got {p}")
    if p == 1:
        return 0.0, 0.0
    if algorithm == "naive":
        return 2 * (p - 1) * al, 2 * (p - 1) * be + (p - 1) * ga
    if algorithm == "tree":
        L = math.ceil(math.log2(p))
        return 2 * L * al, L * (2 * be + ga)
    if algorithm == "rd":
        k = p.bit_length() - 1          # log2 of q, the largest power of two <= p
        extra = p != 1 << k             # ranks beyond q fold in first, get the result after
        return (k + 2 * extra) * al, k * (be + ga) + extra * (2 * be + ga)
    if algorithm == "ring":
        f = (p - 1) / p
        return 2 * (p - 1) * al, 2 * f * be + f * ga
    if algorithm == "mpi":
        fit = params.mpi.get(p) or params.mpi.get(str(p))
        if fit:
            return float(fit[0]), float(fit[1])
        raise ConfigError(f"no fitted MPI Allreduce line at p={p}: calibrate at that p")
    raise ConfigError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}, mpi")


def _has_mpi(p: int, params: CostParams) -> bool:
    return p == 1 or bool(params.mpi.get(p) or params.mpi.get(str(p)))


def allreduce_time(algorithm: str, p: int, nbytes: float, params: CostParams = DEFAULT) -> float:
    """Predicted seconds of one allreduce of ``nbytes`` per rank on p ranks."""
    if algorithm == "mpi" and not _has_mpi(p, params):
        return min(allreduce_time(a, p, nbytes, params) for a in ALGORITHMS)
    a, b = allreduce_line(algorithm, p, params)
    return a + b * nbytes


def best_algorithm(p: int, nbytes: float, params: CostParams = DEFAULT,
                   algorithms=ALGORITHMS) -> str:
    """The algorithm with the smallest predicted time (ties: the earlier in ``algorithms``)."""
    return min(algorithms, key=lambda a: allreduce_time(a, p, nbytes, params))


def crossovers(p: int, params: CostParams = DEFAULT, algorithms=ALGORITHMS,
               max_bytes: float = 2.0**40) -> list[tuple[float, str]]:
    """Lower envelope of the lines: [(from_bytes, algorithm), ...], starting at 0 bytes.

    From 0 take the smallest intercept; then, among lines with a smaller slope, the one met
    first at n* = (a_j - a_i) / (b_i - b_j) takes over, until no line is cheaper per byte.
    """
    # "mpi" without a fit at this p is not a line (it is the envelope itself): leave it out
    algorithms = [a for a in algorithms if a != "mpi" or _has_mpi(p, params)]
    lines = {a: allreduce_line(a, p, params) for a in algorithms}
    cur = min(algorithms, key=lambda a: (lines[a][0], lines[a][1]))
    n, out = 0.0, [(0.0, cur)]
    while True:
        a0, b0 = lines[cur]
        nxt = None
        for alg in algorithms:
            a1, b1 = lines[alg]
            if b1 < b0:
                x = max((a1 - a0) / (b0 - b1), n)
                if x < max_bytes and (nxt is None or (x, b1) < (nxt[0], lines[nxt[1]][1])):
                    nxt = (x, alg)
        if nxt is None:
            return out
        n, cur = nxt
        if out[-1][0] == n:  # two lines beat the old one at the same size: keep the later
            out[-1] = (n, cur)
        else:
            out.append((n, cur))


def dp_step(p: int, compute_time: float, grad_bytes: float, params: CostParams = DEFAULT,
            algorithm: str = "best", scaling: str = "weak") -> dict:
    """One data-parallel step: compute, allreduce, total, efficiency and the algorithm used."""
    if scaling not in ("weak", "strong"):
        raise ConfigError(f"scaling must be weak or strong, got {scaling!r}")
    alg = best_algorithm(p, grad_bytes, params) if algorithm == "best" else algorithm
    if p == 1:
        alg = "none"  # one rank has nothing to reduce
    comp = compute_time / p if scaling == "strong" else compute_time
    comm = allreduce_time(alg, p, grad_bytes, params) if p > 1 else 0.0
    total = comp + comm
    base = compute_time  # T(1): one rank, no communication
    eff = base / total if scaling == "weak" else base / (p * total)
    return {"p": p, "algorithm": alg, "compute": comp, "comm": comm, "step": total,
            "efficiency": eff}


def dp_scaling(ps, compute_time: float, grad_bytes: float, params: CostParams = DEFAULT,
               algorithm: str = "best", scaling: str = "weak") -> list[dict]:
    """``dp_step`` for each p in ``ps`` (e.g. 1..1024)."""
    return [dp_step(p, compute_time, grad_bytes, params, algorithm, scaling) for p in ps]


def fit_line(sizes, times) -> tuple[float, float]:
    """Least-squares (a, b) for times ~ a + b * sizes, clipped at 0 (a time is never negative).

    Relative errors matter (sizes span 8 B to MiB), so rows are weighted by 1/time.
    """
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(times, dtype=float)
    w = 1.0 / np.maximum(y, 1e-12)
    A = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (a, b), *_ = np.linalg.lstsq(A, y * w, rcond=None)
    return max(float(a), 0.0), max(float(b), 0.0)


def default_path() -> Path:
    """$MINIPAR_CALIBRATION, else $XDG_CACHE_HOME/minipar/calibration.json (~/.cache/...)."""
    if os.environ.get("MINIPAR_CALIBRATION"):
        return Path(os.environ["MINIPAR_CALIBRATION"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "minipar" / "calibration.json"


def save(params: CostParams, path=None) -> Path:
    """Write the parameters as JSON (written to a temporary name, then renamed: never half)."""
    path = Path(path) if path else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(params)
    data["mpi"] = {str(k): list(v) for k, v in params.mpi.items()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load(path=None, fallback: bool = True) -> CostParams:
    """Read saved parameters; without a file, DEFAULT when ``fallback`` else ConfigError."""
    path = Path(path) if path else default_path()
    if not path.exists():
        if fallback:
            return DEFAULT
        raise ConfigError(f"no calibration at {path}: run python -m minipar.bench calibrate")
    try:
        data = json.loads(path.read_text())
        return CostParams(alpha=float(data["alpha"]), beta=float(data["beta"]),
                          gamma=float(data["gamma"]),
                          mpi={int(k): tuple(v) for k, v in data.get("mpi", {}).items()},
                          source=str(data.get("source", path)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"calibration file {path} is unreadable ({exc}): "
                          "run calibrate again") from None

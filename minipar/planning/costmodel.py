"""The alpha-beta-gamma cost model of point-to-point messages and allreduce algorithms.

Three numbers describe the machine (Hockney's model plus a reduction rate):

    alpha   seconds of latency per message (MPI + Python call overhead)
    beta    seconds per byte sent (1 / bandwidth)
    gamma   seconds per byte reduced (one elementwise add of two buffers)

More, optional, describe one host (unset, each leaves the model as above):

    cache_bytes  C: bytes of a working set the cache holds (None: no limit)
    beta_mem     seconds per byte sent from beyond C (None: beta)
    gamma_mem    seconds per byte reduced from beyond C (None: gamma)
    private_bytes, gamma_recv
                 a core's own cache (L2) and the seconds per byte of an add whose working
                 set fits in it: the bytes just received are then still in the sending
                 core's cache and cross between cores line by line (None: gamma)
    loaded       with more ranks than cores: {"oneway", "exchange", "exchange_add"} ->
                 (bytes, seconds) points measured with every rank busy in pairs; a step in
                 which ranks outnumber cores (s > 1) costs these, read at its size
                 (``curve_time``), instead of its alpha-beta-gamma terms times s: an add
                 there costs exchange_add - exchange (None: s as below)
    duplex       cost of an exchange's bytes beyond C relative to a one-way message's:
                 1 = full duplex, 2 = half duplex (two copies through the same memory)
    cores, ranks_per_host
                 oversubscription: with b ranks busy at once in a step, s(b) = max(1,
                 min(b, ranks_per_host) / cores) multiplies that step's beta and gamma terms
                 (ranks share cores); ranks_per_host None means one rank per core (s = 1),
                 what the predictions to 1,024 ranks assume

A one-way message of m bytes, part of an operation on a buffer of W bytes (its working
set: the allreduce's whole buffer; W = m for a lone message), takes

    t(m) = alpha + s m [h beta + (1 - h) beta_mem],    h = min(1, C / W)

(h: the share of the buffer the cache holds). For W = m > C this is alpha + s [beta C +
beta_mem (m - C)]: continuous, piecewise linear in m. An exchange (Sendrecv of m bytes each
way) pays duplex beta_mem for its share beyond the cache; one add of m bytes takes
s m [h gamma + (1 - h) gamma_mem] (gamma_mem None: gamma), or s m gamma_recv when W fits
in private_bytes. Why W and not m: the ring sends chunks of n/p bytes, but cycles through
all n; at n = 64 MiB on 4 ranks its 16 MiB chunks come from memory, not from a 16 MiB
cache (measured: 1.64x slower than the m rule said).
For an allreduce of n bytes on each of p ranks, with L = ceil(log2 p), k = floor(log2 p)
and extra = [p is not a power of two], each algorithm is a count of messages of the size
it really sends (collectives.py) plus the bytes it reduces, along the critical path, all
with W = n:

    naive  2(p-1) one-way messages of n              + (p-1) n reduced      (b = 2; adds 1)
    tree   2L one-way messages of n                  + L n reduced          (b = 2 pairs_k)
    rd     k exchanges of n, 2 extra one-way of n    + (k + extra) n reduced (b = q; 2r)
    ring   2(p-1) exchanges of n/p                   + (p-1)/p n reduced    (b = p)

    mpi    MPI's own Allreduce: measured by calibrate at that p on its own grid of sizes and
           interpolated (straight lines between the points on log-log axes; beyond the
           largest, time grows in proportion to n); uncalibrated, the best of the four above
    shm    --allreduce shm (ranks of one host, through shared memory): measured by calibrate
           at that p and interpolated as mpi; no formula, because its cost is the wake-up
           of sleeping ranks and memory copies, not messages; uncalibrated: not priced

(b: ranks busy at once; tree level k has pairs_k = |{v = 0, 2^(k+1), ... : v + 2^k < p}|
sending pairs and pairs_k adding ranks; rd's q = 2^k ranks exchange, its r = p - q extra
pairs fold in and out.)

With the optional terms unset every algorithm is a line a + b n (``allreduce_line``, the
in-cache line), e.g. ring: 2(p-1) alpha + 2 (p-1)/p n beta + (p-1)/p n gamma, tree:
L (2 alpha + 2 n beta + n gamma). With them set the time is piecewise linear in n, so the
best algorithm per size (``crossovers``) is found numerically: evaluate every algorithm on a
log grid of sizes and bisect where the cheapest one changes. Latency terms decide small
messages (rd, tree), bandwidth terms large ones (ring's 2(p-1)/p n beta is within 2x of the
n beta any algorithm must pay).

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

from minipar.core.errors import ConfigError

__all__ = [
    "CostParams", "DEFAULT", "PRESETS", "ALGORITHMS", "p2p_time", "message_time",
    "reduce_time", "curve_time", "allreduce_line",
    "allreduce_time", "best_algorithm", "crossovers", "dp_step", "dp_scaling", "fit_line",
    "has_mpi", "has_shm",
    "default_path", "save", "load",
]

ALGORITHMS = ("naive", "tree", "rd", "ring")


@dataclass
class CostParams:
    """Machine parameters: alpha [s], beta [s/byte], gamma [s/byte reduced].

    ``mpi`` maps a rank count p to MPI's Allreduce measured at that p: a list of
    (bytes, seconds) points (or a line (a, b), as older calibration files hold); ``shm``
    the same for ``allreduce_shm`` (empty when the ranks did not share one host).
    ``cache_bytes``, ``beta_mem``, ``gamma_mem``, ``private_bytes``, ``gamma_recv``,
    ``loaded``, ``duplex``, ``cores`` and ``ranks_per_host`` are the optional host terms of
    the module doc; their defaults leave the plain lines.
    """

    alpha: float
    beta: float
    gamma: float
    mpi: dict = field(default_factory=dict)
    source: str = "defaults"
    beta_mem: float | None = None
    cache_bytes: float | None = None
    duplex: float = 1.0
    cores: int | None = None
    ranks_per_host: int | None = None
    gamma_mem: float | None = None
    private_bytes: float | None = None
    gamma_recv: float | None = None
    loaded: dict | None = None
    shm: dict = field(default_factory=dict)

    def p2p(self, nbytes: float) -> float:
        return message_time(nbytes, self)

    def slowdown(self, p: int) -> float:
        """s = max(1, ranks_on_host / cores) with p ranks busy at once, ranks_on_host =
        min(p, ranks_per_host); 1 when ``cores`` or ``ranks_per_host`` is unset."""
        if not self.cores or not self.ranks_per_host:
            return 1.0
        return max(1.0, min(p, self.ranks_per_host) / self.cores)


def _cached(params: CostParams, wset: float) -> float:
    """h = min(1, C / W): the share of a W-byte working set the cache holds."""
    c = params.cache_bytes
    return 1.0 if c is None or wset <= c else c / wset


def message_time(nbytes: float, params: CostParams, exchange: bool = False,
                 s: float = 1.0, wset: float | None = None) -> float:
    """alpha + s m [h beta + (1 - h) d beta_mem], h = min(1, C / W), W = ``wset`` (default
    m), d = duplex for an exchange (Sendrecv of m bytes each way), else 1."""
    h = _cached(params, nbytes if wset is None else wset)
    bm = params.beta if params.beta_mem is None else params.beta_mem
    d = params.duplex if exchange else 1.0
    per_byte = params.beta if h == 1.0 else h * params.beta + (1 - h) * d * bm
    return params.alpha + s * nbytes * per_byte


def reduce_time(nbytes: float, params: CostParams, s: float = 1.0,
                wset: float | None = None) -> float:
    """s m [h gamma + (1 - h) gamma_mem] for one add of m bytes, h as in message_time;
    s m gamma_recv when the working set fits in private_bytes (both set)."""
    w = nbytes if wset is None else wset
    if params.gamma_recv is not None and params.private_bytes and w <= params.private_bytes:
        return s * nbytes * params.gamma_recv
    h = _cached(params, w)
    gm = params.gamma if params.gamma_mem is None else params.gamma_mem
    return s * nbytes * (params.gamma if h == 1.0 else h * params.gamma + (1 - h) * gm)


def curve_time(points, nbytes: float) -> float:
    """A time from measured (bytes, seconds) points (MPI's Allreduce, the loaded steps):
    straight lines between them on log-log axes; below the smallest, its time; beyond the
    largest, t_last n / n_last."""
    pts = sorted((float(n), float(t)) for n, t in points)
    if nbytes <= pts[0][0]:
        return pts[0][1]
    if nbytes >= pts[-1][0]:
        return pts[-1][1] * nbytes / pts[-1][0]
    for (n0, t0), (n1, t1) in zip(pts, pts[1:]):
        if nbytes <= n1:
            f = math.log(nbytes / n0) / math.log(n1 / n0)
            return t0 * (t1 / t0) ** f


def _mpi_fit(params: CostParams, p: int):
    """The calibrated MPI data at p: a list of points, a line (a, b), or None."""
    fit = params.mpi.get(p) or params.mpi.get(str(p))
    return fit or None


def _shm_fit(params: CostParams, p: int):
    return params.shm.get(p) or params.shm.get(str(p)) or None


def has_shm(p: int, params: CostParams) -> bool:
    """Whether ``allreduce_shm`` was calibrated at p (it is priced only from measurements)."""
    return p == 1 or _shm_fit(params, p) is not None


def _shm_points(params: CostParams, p: int):
    fit = _shm_fit(params, p)
    if fit is None:
        raise ConfigError(f"allreduce shm is priced from measurements only, and none was made "
                          f"at p={p}: run mpiexec -n {p} python -m minipar.bench calibrate")
    return fit


def _is_points(fit) -> bool:
    return isinstance(fit[0], (list, tuple))


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
    """One-way message: alpha + beta * n (piecewise beyond the cache, see message_time)."""
    return message_time(nbytes, params)


def _steps(algorithm: str, p: int):
    """(one-way, exchanges, reductions) along the critical path: lists of (count, size / n,
    ranks busy at once); a reduction's size is bytes reduced / n."""
    if algorithm == "naive":  # one sender and the root at a time; the root adds alone
        return [(2 * (p - 1), 1.0, 2)], [], [(p - 1, 1.0, 1)]
    if algorithm == "tree":  # level k: pairs (v, v + 2^k), v a multiple of 2^(k+1)
        one, red = [], []
        for k in range(math.ceil(math.log2(p))):
            pairs = len(range(0, p - (1 << k), 1 << (k + 1)))
            one.append((2, 1.0, 2 * pairs))     # one message up, one down the tree
            red.append((1, 1.0, pairs))
        return one, [], red
    if algorithm == "rd":
        k = p.bit_length() - 1          # log2 of q, the largest power of two <= p
        q, r = 1 << k, p - (1 << k)     # r ranks beyond q fold in first, get the result after
        return ([(2, 1.0, 2 * r)] if r else [], [(k, 1.0, q)],
                [(k, 1.0, q)] + ([(1, 1.0, r)] if r else []))
    if algorithm == "ring":
        return [], [(2 * (p - 1), 1.0 / p, p)], [(p - 1, 1.0 / p, p)]
    raise ConfigError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}, mpi")


def allreduce_line(algorithm: str, p: int, params: CostParams = DEFAULT) -> tuple[float, float]:
    """(a, b) with T(n) = a + b n for ``algorithm`` on p ranks: the in-cache line (alpha,
    beta, gamma only; exact when the host terms are unset)."""
    if p < 1:
        raise ConfigError(f"p must be >= 1, got {p}")
    if p == 1:
        return 0.0, 0.0
    if algorithm == "mpi":
        fit = _mpi_fit(params, p)
        if fit and _is_points(fit):  # the line through the points, for a summary
            return fit_line(*zip(*fit))
        if fit:
            return float(fit[0]), float(fit[1])
        raise ConfigError(f"no fitted MPI Allreduce line at p={p}: calibrate at that p")
    if algorithm == "shm":
        return fit_line(*zip(*_shm_points(params, p)))
    one, ex, red = _steps(algorithm, p)
    msgs = sum(c for c, _, _ in one + ex)
    sent = sum(c * f for c, f, _ in one + ex)
    reduced = sum(c * f for c, f, _ in red)
    return msgs * params.alpha, sent * params.beta + reduced * params.gamma


def has_mpi(p: int, params: CostParams) -> bool:
    """Whether MPI's own Allreduce was calibrated at p (else it is priced as the best of
    the four hand-written algorithms)."""
    return p == 1 or _mpi_fit(params, p) is not None


def allreduce_time(algorithm: str, p: int, nbytes: float, params: CostParams = DEFAULT) -> float:
    """Predicted seconds of one allreduce of ``nbytes`` per rank on p ranks: the sum of its
    messages (``message_time`` at the size each really is, working set ``nbytes``) and its
    adds (``reduce_time``)."""
    if algorithm == "mpi":
        if not has_mpi(p, params):
            return min(allreduce_time(a, p, nbytes, params) for a in ALGORITHMS)
        fit = _mpi_fit(params, p)
        if fit and _is_points(fit):
            return curve_time(fit, nbytes)
        a, b = allreduce_line(algorithm, p, params)
        return a + b * nbytes
    if algorithm == "shm":
        return 0.0 if p == 1 else curve_time(_shm_points(params, p), nbytes)
    if p < 1:
        raise ConfigError(f"p must be >= 1, got {p}")
    if p == 1:
        _steps(algorithm, 2)  # an unknown name still fails
        return 0.0
    one, ex, red = _steps(algorithm, p)
    s, ld = params.slowdown, params.loaded  # s of the ranks busy in that step

    def step(kind, m, b, exchange=False):
        if ld and s(b) > 1:  # more busy ranks than cores: measured that way
            if kind == "add":
                return max(0.0, curve_time(ld["exchange_add"], m) - curve_time(ld["exchange"], m))
            return curve_time(ld[kind], m)
        if kind == "add":
            return reduce_time(m, params, s(b), nbytes)
        return message_time(m, params, exchange, s(b), nbytes)

    t = sum(c * step("oneway", f * nbytes, a) for c, f, a in one)
    t += sum(c * step("exchange", f * nbytes, a, True) for c, f, a in ex)
    return t + sum(c * step("add", f * nbytes, a) for c, f, a in red)


def best_algorithm(p: int, nbytes: float, params: CostParams = DEFAULT,
                   algorithms=ALGORITHMS) -> str:
    """The algorithm with the smallest predicted time (ties: the earlier in ``algorithms``)."""
    return min(algorithms, key=lambda a: allreduce_time(a, p, nbytes, params))


def crossovers(p: int, params: CostParams = DEFAULT, algorithms=ALGORITHMS,
               max_bytes: float = 2.0**40, per_octave: int = 8) -> list[tuple[float, str]]:
    """Where the cheapest algorithm changes: [(from_bytes, algorithm), ...], from 0 bytes.

    ``best_algorithm`` on a grid (0, then 1 B to ``max_bytes`` at ``per_octave`` points per
    doubling); between two grid points whose best differ, bisect to the first size where
    the best changes, record it, and go on from there until the right end's best is reached
    (so a segment narrower than the grid is not skipped).
    """
    # "mpi" without a fit at this p is the envelope itself, not a curve of its own
    algorithms = [a for a in algorithms if a != "mpi" or has_mpi(p, params)]

    def best(n):
        return best_algorithm(p, n, params, algorithms)

    steps = int(math.log2(max_bytes) * per_octave)
    grid = [0.0] + [2.0 ** (i / per_octave) for i in range(steps + 1)]
    out = [(0.0, best(0.0))]
    for lo, hi in zip(grid, grid[1:]):
        b_hi = best(hi)
        while out[-1][1] != b_hi:
            cur, left, right = out[-1][1], max(lo, out[-1][0]), hi
            while right - left > 1e-12 * right:
                mid = (left + right) / 2
                if best(mid) == cur:
                    left = mid
                else:
                    right = mid
            if out[-1][0] == right:  # two changes at one size: keep the later
                out[-1] = (right, best(right))
            else:
                out.append((right, best(right)))
    return out


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
    data["shm"] = {str(k): list(v) for k, v in params.shm.items()}
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
        opt = {k: data.get(k) for k in ("beta_mem", "cache_bytes", "cores", "ranks_per_host",
                                        "gamma_mem", "private_bytes", "gamma_recv")}
        loaded = data.get("loaded")
        return CostParams(alpha=float(data["alpha"]), beta=float(data["beta"]),
                          gamma=float(data["gamma"]),
                          mpi={int(k): (tuple(map(tuple, v)) if _is_points(v) else tuple(v))
                               for k, v in data.get("mpi", {}).items()},
                          shm={int(k): tuple(map(tuple, v))
                               for k, v in data.get("shm", {}).items()},
                          source=str(data.get("source", path)),
                          duplex=float(data.get("duplex", 1.0)),
                          loaded={k: tuple(map(tuple, v)) for k, v in loaded.items()}
                          if loaded else None,
                          **{k: (None if v is None else type_(v)) for (k, v), type_ in
                             zip(opt.items(), (float, float, int, int, float, float, float))})
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"calibration file {path} is unreadable ({exc}): "
                          "run calibrate again") from None

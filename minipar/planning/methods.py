"""Predicted step time of every parallel method minipar has, from a Workload and a Network.

Notation: p ranks, B global rows, fb(b) forward + backward on b rows, opt the optimizer
step, G gradient bytes, T_ar(alg, p, n) the cost model's allreduce of n bytes
(``costmodel.allreduce_time``), msg(n) one message, s = max(1, p / cores) when p ranks
share a host's cores (compute slows by s), 1 with one rank per core.

    allreduce (data parallel)  s [fb_p(B/p) + opt] + sum over buckets T_ar(alg, p, bucket)
                               + T_ar(mpi, p, 24 B) (the loss and stop flags)
        overlap                the buckets but the last run during backward (2/3 of fb),
                               hidden only with a core to spare (s = 1); any algorithm but shm
        shm                    T_ar from calibrate's measurements of allreduce_shm at p (the
                               loss and flags too; no bytes sent); only with the ranks on one
                               host (the calibrated network) and a measurement at p
    local SGD every k          s [fb_p(B/p) + opt] + 3 T_ar(alg, p, G) / k  (weights, Adam m, v)
    parameter server           s [fb_p(B/p) + opt] + 2 (p-1) msg(G) + (p-1) G gamma
                               (rank 0 takes every gradient in and sends every copy out)
    pipeline, S = p stages,    (M + S - 1) [s fb(B/M) / S + 2 msg(B/M x cut)] + s opt / S
      M micro-batches          of which (S - 1) s fb(B/M) / S is the bubble:
                               (S-1)/(M+S-1) of the compute slots stand idle
    grid d x S                 the pipeline on B/d rows + T_ar(alg, d, G / S)
    N-gram count exchange      s [count(N/p) + merge] + (p-1) alpha + s (p-1)/p bytes(N/p) beta

fb_p is the slowest of p ranks' fb (``Workload.fb_slowest``): a synchronous step waits for
it. Bytes sent are the busiest rank's per step; peak memory per rank is Workload.memory of what
the rank holds (GPipe keeps all M micro-batches' activations, 1F1B at most S).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from minipar.core.units import format_bytes
from minipar.planning import costmodel as cm
from minipar.planning.workload import Workload

__all__ = ["Network", "Prediction", "candidates", "EXACT_NOTE", "LOCAL_SGD_CAVEAT"]

ALGORITHMS = ("ring", "tree", "rd", "naive", "mpi", "shm")
OVERLAP = ("ring", "mpi")  # overlap rows: the default algorithm and MPI's own
LOCAL_SGD_CAVEAT = ("local SGD is not the one-process gradient: replicas drift for k steps, "
                    "so check its loss against allreduce's before trusting it")
EXACT_NOTE = "the same gradient as one process"
DEFAULT_BUCKET = 1 << 20  # minipar.train's --bucket-kb 1024
METRICS_BYTES = 24  # the loss and stop flags every step allreduces (training/loop.py)


@dataclass
class Network:
    """Cost parameters and where ranks live: ``cores`` set means the p ranks share one
    host of that many cores (this machine); None means one rank per core."""

    name: str
    params: cm.CostParams
    source: str
    cores: int | None = None
    per_p: dict = field(default_factory=dict)  # p -> CostParams calibrated at that p

    def at(self, p: int) -> cm.CostParams:
        """The parameters for p ranks: calibrated at p, else the closest p below."""
        below = [q for q in self.per_p if q <= p]
        return self.per_p[max(below)] if below else self.params

    def slowdown(self, p: int) -> float:
        return max(1.0, p / self.cores) if self.cores else 1.0


@dataclass
class Prediction:
    method: str
    ranks: int
    compute: float = 0.0
    comm: float = 0.0
    latency: float = 0.0          # the share of comm that is per-message cost
    bubble: float = 0.0
    bytes_sent: float = 0.0
    memory: float = 0.0
    fits: bool = True
    exact: bool = True
    caveat: str = ""
    skip: str = ""                # why it cannot run at all (then no times)
    base: float = 0.0             # T(1): one rank, for the efficiency

    @property
    def step(self) -> float:
        return self.compute + self.comm + self.bubble

    @property
    def efficiency(self) -> float:
        """Strong scaling (fixed global batch): T(1) / (p T(p))."""
        return self.base / (self.ranks * self.step) if self.step > 0 else 0.0

    @property
    def bound(self) -> str:
        if not self.fits:
            return "memory"
        parts = {"compute": self.compute + self.bubble, "latency": self.latency,
                 "bandwidth": self.comm - self.latency}
        return max(parts, key=parts.get)


def _latency(alg: str, p: int, params) -> float:
    """The per-message part of an allreduce: messages x alpha (MPI's own: its time at 8 B)."""
    if p == 1:
        return 0.0
    if alg in ("mpi", "shm"):
        return cm.allreduce_time(alg, p, 8, params)
    return cm.allreduce_line(alg, p, params)[0]


def busiest_sent(alg: str, p: int, n: float) -> float:
    """Bytes the busiest rank sends in one allreduce of n bytes (MPI's own: as ring)."""
    if p == 1 or alg == "shm":  # shm: the sum is read from shared memory, nothing is sent
        return 0.0
    k = p.bit_length() - 1
    return {"naive": (p - 1) * n, "tree": math.ceil(math.log2(p)) * n,
            "rd": (k + (p != 1 << k)) * n}.get(alg, 2 * (p - 1) / p * n)


def _allreduce(alg: str, p: int, n: float, params, bucket: float | None = None):
    """(seconds, latency seconds, busiest bytes) of allreducing n bytes in buckets."""
    if p == 1 or n <= 0:
        return 0.0, 0.0, 0.0
    k = max(1, math.ceil(n / bucket)) if bucket else 1
    t = k * cm.allreduce_time(alg, p, n / k, params)
    return t, k * _latency(alg, p, params), busiest_sent(alg, p, n)


def _compute(w: Workload, net: Network, p: int, rows: float) -> float:
    """s [fb(rows) + opt]; one process on this host uses all its cores (fb_full)."""
    if p == 1 and net.cores and net.cores > 1 and w.fb_full is not None and rows == w.batch:
        return w.fb_full + w.opt_s
    return net.slowdown(p) * (w.fb_slowest(rows, p) + w.opt_s)


def data_parallel(w: Workload, net: Network, p: int, alg: str, bucket=1 << 20,
                  overlap=False) -> Prediction:
    params = net.at(p)
    name = f"allreduce {alg}" + (" +overlap" if overlap else "")
    if bucket and bucket != DEFAULT_BUCKET:
        name += f", {format_bytes(int(bucket), 'g')} buckets"
    pr = Prediction(name, p, caveat=EXACT_NOTE)
    if w.batch < p:
        pr.skip = (f"a global batch of {w.batch} rows leaves some of {p} ranks without a "
                   "row (raise --batch)")
        return pr
    if alg == "shm" and p > 1 and (net.cores is None or not cm.has_shm(p, params)):
        pr.skip = ("shm needs every rank on one host; these are on hosts joined by a network"
                   if net.cores is None else f"shm is priced only from calibrate's "
                   f"measurements, and none was made at p={p} (mpiexec -n {p} python -m "
                   f"minipar.bench calibrate)")
        return pr
    rows = w.batch / p
    pr.compute = _compute(w, net, p, rows)
    t, lat, sent = _allreduce(alg, p, w.grad_bytes, params, bucket)
    if p > 1:  # the loss and flags: through shm when it is chosen (training/loop.py)
        metrics = cm.allreduce_time("shm" if alg == "shm" else "mpi", p, METRICS_BYTES, params)
        t, lat = t + metrics, lat + metrics
    if overlap and net.slowdown(p) == 1 and p > 1:
        last = t / max(1, math.ceil(w.grad_bytes / bucket))
        hidden = min(t - last, 2 / 3 * net.slowdown(p) * w.fb(rows))
        lat *= (t - hidden) / t
        t -= hidden
    pr.comm, pr.latency, pr.bytes_sent = t, lat, sent
    pr.memory = w.memory(math.ceil(rows))
    if alg == "mpi" and p > 1 and not cm.has_mpi(p, params):
        pr.method += " (assumed)"  # no measurement of MPI's own at p: the best of the four
    return pr


def local_sgd(w: Workload, net: Network, p: int, every: int, alg: str = "ring") -> Prediction:
    pr = data_parallel(w, net, p, alg, bucket=None)
    pr.method, pr.exact, pr.caveat = f"local SGD k={every} ({alg})", False, LOCAL_SGD_CAVEAT
    if pr.skip or p == 1:
        return pr
    params = net.at(p)
    t, lat, sent = _allreduce(alg, p, w.grad_bytes, params)
    metrics = cm.allreduce_time("mpi", p, METRICS_BYTES, params)
    pr.comm, pr.latency = 3 * t / every + metrics, 3 * lat / every + metrics
    pr.bytes_sent = 3 * sent / every
    pr.memory = w.memory(math.ceil(w.batch / p), buffers=2)
    return pr


def parameter_server(w: Workload, net: Network, p: int) -> Prediction:
    pr = data_parallel(w, net, p, "ring", bucket=None)
    pr.method, pr.caveat = "parameter server", EXACT_NOTE
    if pr.skip or p == 1:
        return pr
    params, g = net.at(p), w.grad_bytes
    one = cm.message_time(g, params)
    pr.comm = 2 * (p - 1) * one + cm.reduce_time(g, params) * (p - 1)
    pr.comm += cm.allreduce_time("mpi", p, METRICS_BYTES, params)
    pr.latency = 2 * (p - 1) * params.alpha
    pr.bytes_sent = (p - 1) * g
    pr.memory = w.memory(math.ceil(w.batch / p), buffers=2)
    return pr


def pipeline(w: Workload, net: Network, p: int, schedule: str, micro: int,
             replicas: int = 1, alg: str = "ring") -> Prediction:
    """S = p / replicas stages, M = ``micro`` micro-batches of B / (replicas M) rows."""
    stages = p // replicas
    name = (f"{schedule} M={micro}" if replicas == 1 else
            f"grid {replicas}x{stages} {schedule} M={micro}")
    pr = Prediction(name, p, caveat=EXACT_NOTE)
    rows = w.batch / replicas / micro
    if not w.pipeline:
        pr.skip = "minipar's pipeline runs the LSTM LM only"
    elif stages > w.layers:
        pr.skip = f"{stages} stages need at least {stages} layers (the model has {w.layers})"
    elif rows < 1 or w.batch % (replicas * micro):
        pr.skip = f"{micro} micro-batches do not divide {w.batch // replicas} rows"
    if pr.skip:
        return pr
    params, s = net.at(p), net.slowdown(p)
    slot = s * w.fb(rows) / stages
    msg = 2 * cm.message_time(rows * w.cut_bytes_per_row, params) if stages > 1 else 0.0
    pr.compute = micro * slot + s * w.opt_s / stages
    pr.bubble = (stages - 1) * slot
    pr.comm = (micro + stages - 1) * msg
    pr.latency = (micro + stages - 1) * 2 * params.alpha if stages > 1 else 0.0
    pr.bytes_sent = 2 * micro * rows * w.cut_bytes_per_row if stages > 1 else 0.0
    if replicas > 1:
        t, lat, sent = _allreduce(alg, replicas, w.grad_bytes / stages, params)
        pr.comm, pr.latency, pr.bytes_sent = pr.comm + t, pr.latency + lat, pr.bytes_sent + sent
    in_flight = micro if schedule == "gpipe" else min(stages, micro)
    pr.memory = w.memory(rows * in_flight / stages, share=1 / stages)
    return pr


def ngram_exchange(w: Workload, net: Network, p: int) -> Prediction:
    """Each rank counts N / p tokens (count(n) = t0 + t1 n), keeps 1/p of the n-grams it
    found and sends the rest, (p-1)/p of bytes(N / p) = a (N / p)^b, to their owners, and
    merges what it receives at the counting's rate per byte (both are sorts of the rows)."""
    g = w.ngram
    pr = Prediction("count exchange", p, caveat="the same counts as one process")
    params, s = net.at(p), net.slowdown(p)
    (t0, t1), (a, b) = g["count_line"], g["bytes_pow"]
    n = g["tokens"] / p
    local = a * n ** b
    out = local * (p - 1) / p
    per_byte = (t0 + t1 * g["tokens"]) / (a * g["tokens"] ** b)
    pr.compute = s * (t0 + t1 * n + per_byte * out)
    if p > 1:
        pr.comm = (p - 1) * params.alpha + s * out * params.beta
        pr.latency = (p - 1) * params.alpha
    pr.bytes_sent = out
    pr.memory = local + a * g["tokens"] ** b / p
    return pr


def candidates(w: Workload, net: Network, p: int, memory: float | None = None,
               buckets=(1 << 20,), every=(4,)) -> list[Prediction]:
    """Every method at p ranks; those over ``memory`` bytes per rank are marked unfit."""
    if w.ngram is not None:
        rows = [ngram_exchange(w, net, p)]
    else:
        rows = [data_parallel(w, net, p, a, b) for a in ALGORITHMS for b in buckets]
        rows += [data_parallel(w, net, p, a, buckets[0], overlap=True) for a in OVERLAP]
        rows += [local_sgd(w, net, p, k) for k in every]
        rows.append(parameter_server(w, net, p))
        for sched in ("gpipe", "1f1b"):
            for m in sorted({p, 2 * p, 4 * p}):
                rows.append(pipeline(w, net, p, sched, m))
        for d in range(2, p // 2 + 1):
            if p % d == 0 and p // d >= 2:
                rows.append(pipeline(w, net, p, "1f1b", 2 * (p // d), replicas=d))
    if p == 1:  # one rank: every method is the same step; keep one row of each kind
        rows = [r for r in rows if r.method in ("allreduce ring", "count exchange")]
        for r in rows:
            r.method = "one process"
    base = ngram_exchange(w, net, 1).step if w.ngram is not None else _compute(w, net, 1, w.batch)
    for r in rows:
        r.base = base
        if memory is not None and not r.skip and r.memory > memory:
            r.fits = False
    return rows

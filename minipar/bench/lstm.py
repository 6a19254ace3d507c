"""One training step of a character LSTM language model: minipar against PyTorch (CPU).

    python -m minipar.bench lstm [--threads N] [--steps S] [--warmup W] [--json]

Model (both frameworks, float32): Embedding(65, 64) -> LSTM(64, 256), one layer, batch-first
-> Linear(256, 65); mean cross-entropy over all B*T = 32*64 positions; Adam (lr 1e-3).
A step is zero_grad, forward, loss, backward, Adam update. The two frameworks run in the
same process on the same token batch, in alternating blocks (``--rounds``, each after
``--warmup`` untimed steps), so that a noisy neighbour slows both alike; the figures are
medians over the ``--steps`` timed steps of each.

Threads: ``torch.set_num_threads(N)`` for PyTorch; for NumPy's OpenBLAS the BLAS pool is
limited with threadpoolctl when it is installed, else the process re-executes itself once
with OPENBLAS_NUM_THREADS=N in the environment (it must be set before NumPy loads). The
output says which. Elementwise NumPy work is single-threaded either way.

GEMM-rate fraction: the step's matrix products, counted as 2 m n k each,

    F = 3 * 2 B T (4H (E + H) + H V)       (the forward products, and two per product in
                                            backward: the gradients of both operands)

over the step's time and this machine's float32 GEMM rate R (the best of 5 products of two
1024 x 1024 matrices, with the same threads, timed in the same run): fraction = F / (t R).
It says how much of the step's time goes to arithmetic the BLAS does at full speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy

from minipar.bench import import_torch
from minipar.core import backend
from minipar.autograd import ops
from minipar.nn.basic import Embedding, Linear
from minipar.nn.lstm import LSTM
from minipar.nn.module import Module
from minipar.nn.optim import Adam

_REEXEC = "MINIPAR_BENCH_LSTM_REEXEC"


class CharLSTM(Module):
    """ids (B, T) -> logits (B*T, V): embedding, one LSTM layer, linear decoder."""

    def __init__(self, vocab: int, embed: int, hidden: int):
        super().__init__()
        self.embed = Embedding(vocab, embed)
        self.lstm = LSTM(embed, hidden)
        self.head = Linear(hidden, vocab)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        b, t, h = out.shape
        return self.head(ops.reshape(out, (b * t, h)))


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench lstm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (1)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per framework (20)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps before each block (3)")
    p.add_argument("--rounds", type=int, default=2,
                   help="blocks per framework, alternating minipar, torch, ... (2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if min(a.threads, a.steps, a.rounds) < 1 or a.warmup < 0:
        p.error("--threads, --steps and --rounds must be at least 1, --warmup at least 0")
    return a


def _limit_blas(n: int):
    """Limit OpenBLAS to n threads; returns (how, info about the BLAS library)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(n):
            if os.environ.get(_REEXEC):
                raise SystemExit("bench lstm: could not set OPENBLAS_NUM_THREADS") from None
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), **{_REEXEC: "1"})
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
        return "env OPENBLAS_NUM_THREADS", {}
    limiter = threadpool_limits(limits=n, user_api="blas")
    blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"
            and "numpy" in i.get("filepath", "")]
    info = {k: blas[0].get(k) for k in ("version", "architecture")} if blas else {}
    return "threadpoolctl", {"limiter": limiter, **info}


def _minipar_step(model, opt, ids, targets, times):
    c0 = time.process_time()
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = ops.cross_entropy(model(ids), targets)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    times["fwd"].append(t1 - t0)
    times["bwd"].append(t2 - t1)
    times["opt"].append(t3 - t2)
    times["step"].append(t3 - t0)
    times.setdefault("cpu", []).append(time.process_time() - c0)
    return loss.item()


def step_flops(a) -> float:
    """F above: the step's matrix-product FLOPs (embedding lookup and elementwise excluded)."""
    B, T, V, E, H = a.batch, a.seq, a.vocab, a.embed, a.hidden
    return 3 * 2 * B * T * (4 * H * (E + H) + H * V)


def gemm_rate(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of this process's float32 GEMM: the best of ``repeats`` n x n products."""
    gen = numpy.random.default_rng(0)
    x, y = (gen.standard_normal((n, n)).astype(numpy.float32) for _ in range(2))
    out = numpy.empty((n, n), numpy.float32)
    numpy.matmul(x, y, out=out)  # warm: threads started, pages touched
    best = min(_timed(lambda: numpy.matmul(x, y, out=out)) for _ in range(repeats))
    return 2.0 * n ** 3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _torch_setup(torch, a):
    torch.manual_seed(a.seed)
    model = torch.nn.ModuleDict({
        "embed": torch.nn.Embedding(a.vocab, a.embed),
        "lstm": torch.nn.LSTM(a.embed, a.hidden, batch_first=True),
        "head": torch.nn.Linear(a.hidden, a.vocab),
    })
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(ids, targets, times):
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad()
        out, _ = model["lstm"](model["embed"](ids))
        logits = model["head"](out.reshape(-1, a.hidden))
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        opt.step()
        times["step"].append(time.perf_counter() - t0)
        times.setdefault("cpu", []).append(time.process_time() - c0)
        return loss.item()

    return step


def main(argv=None) -> int:
    a = _parse(sys.argv[1:] if argv is None else argv)
    torch = import_torch("lstm")
    if torch is None:
        return 2
    how, blas = _limit_blas(a.threads)
    torch.set_num_threads(a.threads)

    backend.seed(a.seed)
    gen = numpy.random.default_rng(a.seed)
    ids = gen.integers(0, a.vocab, size=(a.batch, a.seq))
    targets = gen.integers(0, a.vocab, size=(a.batch * a.seq,))
    with backend.dtype_scope("float32"):
        model = CharLSTM(a.vocab, a.embed, a.hidden)
        opt = Adam(model.parameters(), lr=1e-3)
        torch_step = _torch_setup(torch, a)
        ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets)
        mp = {"fwd": [], "bwd": [], "opt": [], "step": []}
        tt = {"step": []}
        per_round = -(-a.steps // a.rounds)
        for _ in range(a.rounds):
            # blocks, not step-by-step alternation: each framework's idle BLAS/OpenMP
            # threads spin for a while after a call and would steal the other's cores
            for _ in range(a.warmup):
                _minipar_step(model, opt, ids, targets, {k: [] for k in mp})
            for _ in range(per_round):
                loss_mp = _minipar_step(model, opt, ids, targets, mp)
            for _ in range(a.warmup):
                torch_step(ids_t, targets_t, {"step": []})
            for _ in range(per_round):
                loss_t = torch_step(ids_t, targets_t, tt)

    def ms(xs):
        return round(1e3 * statistics.median(xs), 2)

    rate, flops = gemm_rate(), step_flops(a)

    res = {
        "minipar_ms": ms(mp["step"]), "torch_ms": ms(tt["step"]),
        "ratio": round(statistics.median(mp["step"]) / statistics.median(tt["step"]), 3),
        "threads": a.threads, "blas_threads_via": how,
        "minipar_forward_ms": ms(mp["fwd"]), "minipar_backward_ms": ms(mp["bwd"]),
        "minipar_adam_ms": ms(mp["opt"]),
        # CPU seconds of the process per step (all threads): on a busy machine a steadier
        # measure than wall time of the work done, though not of the waiting
        "minipar_cpu_ms": ms(mp["cpu"]), "torch_cpu_ms": ms(tt["cpu"]),
        "steps": len(mp["step"]), "warmup": a.warmup, "rounds": a.rounds,
        "shape": {"batch": a.batch, "seq": a.seq, "vocab": a.vocab, "embed": a.embed,
                  "hidden": a.hidden},
        "numpy": numpy.__version__, "torch": torch.__version__,
        "openblas": blas.get("version"), "openblas_kernel": blas.get("architecture"),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "final_loss": {"minipar": round(loss_mp, 4), "torch": round(loss_t, 4)},
        "step_gflop": round(flops / 1e9, 4), "gemm_gflops": round(rate / 1e9, 2),
        "minipar_gemm_fraction": round(flops / (statistics.median(mp["step"]) * rate), 3),
        "torch_gemm_fraction": round(flops / (statistics.median(tt["step"]) * rate), 3),
    }
    if a.json:
        print(json.dumps(res))
        return 0
    print(f"char-LSTM LM step (B={a.batch} T={a.seq} V={a.vocab} E={a.embed} H={a.hidden}, "
          f"float32, Adam), {a.threads} thread(s) [BLAS via {how}], median of {res['steps']}")
    print(f"  minipar  {res['minipar_ms']:9.2f} ms   (forward {res['minipar_forward_ms']}, "
          f"backward {res['minipar_backward_ms']}, Adam {res['minipar_adam_ms']})")
    print(f"  torch    {res['torch_ms']:9.2f} ms")
    print(f"  CPU time per step: minipar {res['minipar_cpu_ms']} ms, "
          f"torch {res['torch_cpu_ms']} ms")
    print(f"  ratio    {res['ratio']:9.3f}   (minipar / torch)")
    print(f"  GEMM-rate fraction: minipar {res['minipar_gemm_fraction']:.3f}, torch "
          f"{res['torch_gemm_fraction']:.3f} ({res['step_gflop']} GFLOP of products per step; "
          f"this machine's float32 GEMM: {res['gemm_gflops']} GFLOP/s on {a.threads} "
          f"thread(s))")
    if res["openblas_coretype_env"]:
        print(f"  note: OPENBLAS_CORETYPE={res['openblas_coretype_env']} is set; OpenBLAS "
              f"runs the {res['openblas_kernel']} kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

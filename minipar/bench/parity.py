"""Every model's training step against PyTorch's (CPU), on 1 and 2 threads, in one run.

    python -m minipar.bench parity [--threads 1,2] [--models char,word,classifier,mlp32,mlp512]
        [--steps 20] [--rounds 2] [--warmup 3] [--json]

The models, float32, each built the same way in both frameworks (minipar's own model
classes; PyTorch's nn modules), Adam (lr 1e-3), mean loss:

    char        character LSTM LM: Embedding(65, 64) -> LSTM(256) -> Linear(65); T 64, B 32
    word        word LSTM LM (Zaremba et al.'s small): Embedding(10000, 200) -> 2 x LSTM(200)
                -> Linear(10000); T 20, B 20
    classifier  the design document's listing: Embedding(1000, 64) -> LSTM(64) -> Dense(1),
                binary cross-entropy on the last step's output; T 100, B 32
    mlp32/512   Bengio MLP LM (minipar.train's default size): Embedding(105, 32) over 5
                tokens -> Linear(256) -> tanh -> Linear(105); batch 32 / 512

A step is zero_grad, forward, loss, backward, Adam update. For each thread count a fresh
process runs (``OPENBLAS_NUM_THREADS`` set before NumPy loads, ``torch.set_num_threads``);
in it the frameworks alternate in blocks of steps (``--rounds``, each after
``--warmup`` untimed steps), so that a noisy neighbour slows both alike. Each cell is the
median step of each framework and their ratio, minipar / PyTorch: at most 1.0 means minipar
is as fast or faster. Beside it, the share of each step spent in zero_grad and the update
(the optimizer's share; no clipping here).

A third framework runs in the same blocks: PyTorch with oneDNN switched off
(``torch.backends.mkldnn.flags(enabled=False)``, "per-op"). PyTorch's CPU LSTM otherwise runs
oneDNN's fused RNN kernel, one compiled call for a layer's whole sequence; with it off, the
layer runs step by step, a product and a few elementwise operations at a time, which is what
minipar's NumPy loop does. Its column says how much of the gap to PyTorch is that kernel.

The BLAS kernel that ran is named (threadpoolctl), and the run warns when
OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set: either slows NumPy's BLAS on some CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from minipar.bench import import_torch

MODELS = ("char", "word", "classifier", "mlp32", "mlp512")
SLOWING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench parity",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (1,2)")
    p.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}")
    p.add_argument("--steps", type=int, default=20, help="timed steps per framework (20)")
    p.add_argument("--rounds", type=int, default=2, help="alternating blocks (2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before a block (3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    try:
        a.threads = [int(t) for t in a.threads.split(",")]
    except ValueError:
        p.error(f"--threads must be whole numbers separated by commas, got {a.threads!r}")
    a.models = [m for m in a.models.split(",") if m]
    bad = [m for m in a.models if m not in MODELS]
    if bad or not a.models:
        p.error(f"--models: unknown {', '.join(bad) or '(none given)'}; choose from "
                f"{', '.join(MODELS)}")
    if min(a.threads) < 1 or min(a.steps, a.rounds) < 1 or a.warmup < 0:
        p.error("--threads, --steps and --rounds must be at least 1, --warmup at least 0")
    return a


# ---- the models, in both frameworks ------------------------------------------------------

def _shapes(name: str) -> dict:
    return {"char": dict(kind="lm", V=65, E=64, H=256, L=1, T=64, B=32),
            "word": dict(kind="lm", V=10000, E=200, H=200, L=2, T=20, B=20),
            "classifier": dict(kind="clf", V=1000, E=64, H=64, L=1, T=100, B=32),
            "mlp32": dict(kind="mlp", V=105, E=32, H=256, C=5, B=32),
            "mlp512": dict(kind="mlp", V=105, E=32, H=256, C=5, B=512)}[name]


def _data(s: dict, seed: int = 0):
    import numpy as np
    gen = np.random.default_rng(seed)
    if s["kind"] == "mlp":
        return gen.integers(0, s["V"], (s["B"], s["C"])), gen.integers(0, s["V"], s["B"])
    ids = gen.integers(0, s["V"], (s["B"], s["T"]))
    if s["kind"] == "clf":
        return ids, gen.integers(0, 2, s["B"]).astype(np.float32)
    return ids, gen.integers(0, s["V"], (s["B"], s["T"]))


def _step_of(opt, loss):
    """zero_grad, forward and loss, backward, update: the same four calls in both frameworks.
    A step returns its loss and the seconds of its zero_grad and update (the optimizer's)."""
    def step():
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        out = loss()
        out.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return out.item(), (t1 - t0) + (t3 - t2)
    return step


def _minipar_step(s: dict):
    import numpy as np

    from minipar.models.classifier import LSTMClassifier
    from minipar.models.lstm_lm import LSTMLM
    from minipar.models.mlp_lm import MLPLM
    from minipar.nn.optim import Adam

    x, y = _data(s)
    if s["kind"] == "lm":
        model = LSTMLM(s["V"], s["E"], s["H"], num_layers=s["L"])

        def loss():
            return model.loss(x, y, reduction="mean")[0]
    elif s["kind"] == "clf":
        model = LSTMClassifier(s["V"], s["E"], s["H"])
        lengths = np.full(s["B"], s["T"])

        def loss():
            return model.loss(x, lengths, y, reduction="mean")
    else:
        model = MLPLM(s["V"], s["C"], s["E"], s["H"])

        def loss():
            return model.loss(x, y, reduction="mean")
    return _step_of(Adam(model.parameters(), lr=1e-3), loss)


def _torch_step(torch, s: dict, onednn: bool = True):
    nn, F = torch.nn, torch.nn.functional
    x, y = (torch.from_numpy(a) for a in _data(s))
    if s["kind"] == "mlp":
        model = nn.ModuleDict({"embed": nn.Embedding(s["V"], s["E"]),
                               "hidden": nn.Linear(s["C"] * s["E"], s["H"]),
                               "out": nn.Linear(s["H"], s["V"])})

        def loss():
            h = torch.tanh(model["hidden"](model["embed"](x).reshape(s["B"], -1)))
            return F.cross_entropy(model["out"](h), y)
    else:
        model = nn.ModuleDict({"embed": nn.Embedding(s["V"], s["E"]),
                               "lstm": nn.LSTM(s["E"], s["H"], num_layers=s["L"],
                                               batch_first=True),
                               "head": nn.Linear(s["H"], 1 if s["kind"] == "clf" else s["V"])})

        def loss():
            out, _ = model["lstm"](model["embed"](x))
            if s["kind"] == "clf":
                return F.binary_cross_entropy_with_logits(model["head"](out[:, -1]).reshape(-1),
                                                          y)
            return F.cross_entropy(model["head"](out.reshape(-1, s["H"])), y.reshape(-1))
    step = _step_of(torch.optim.Adam(model.parameters(), lr=1e-3), loss)
    if onednn:
        return step

    def per_op():
        with torch.backends.mkldnn.flags(enabled=False):
            return step()
    return per_op


# ---- one thread count, in its own process -----------------------------------------------

def _blocks(steps: dict, a) -> dict:
    """Alternate the frameworks in blocks; median seconds of each one's timed steps, and
    (``NAME optim``) of their zero_grad plus update."""
    times = {k: [] for k in steps}
    optim = {k: [] for k in steps}
    per_round = -(-a.steps // a.rounds)
    for _ in range(a.rounds):
        # blocks, not step-by-step alternation: each library's idle worker threads spin for
        # a while after a call and would steal the other's cores
        for name, step in steps.items():
            for _ in range(a.warmup):
                step()
            for _ in range(per_round):
                t0 = time.perf_counter()
                optim[name].append(step()[1])
                times[name].append(time.perf_counter() - t0)
    return {**{k: statistics.median(v) for k, v in times.items()},
            **{f"{k} optim": statistics.median(v) for k, v in optim.items()}}


def _kernel() -> str | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"
            and "numpy" in i.get("filepath", "")]
    return blas[0].get("architecture") if blas else None


def worker(a) -> int:
    import numpy
    import torch

    from minipar.core import backend

    threads = a.threads[0]
    torch.set_num_threads(threads)
    rows = []
    for name in a.models:
        s = _shapes(name)
        backend.seed(0)
        torch.manual_seed(0)
        with backend.dtype_scope("float32"):
            med = _blocks({"minipar": _minipar_step(s), "torch": _torch_step(torch, s),
                           "per-op": _torch_step(torch, s, onednn=False)}, a)
        rows.append({"model": name, "threads": threads, "minipar_ms": 1e3 * med["minipar"],
                     "torch_ms": 1e3 * med["torch"], "ratio": med["minipar"] / med["torch"],
                     "per_op_ms": 1e3 * med["per-op"],
                     "per_op_ratio": med["minipar"] / med["per-op"],
                     "minipar_optim": med["minipar optim"] / med["minipar"],
                     "torch_optim": med["torch optim"] / med["torch"]})
    print(json.dumps({"rows": rows, "kernel": _kernel(), "numpy": numpy.__version__,
                      "torch": torch.__version__}))
    return 0


def _run_threads(a, n: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n))
    cmd = [sys.executable, "-m", "minipar.bench", "parity", "--worker", "--threads", str(n),
           "--models", ",".join(a.models), "--steps", str(a.steps), "--rounds",
           str(a.rounds), "--warmup", str(a.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    a = _parse(sys.argv[1:] if argv is None else argv)
    if import_torch("parity") is None:  # checked here, used by the workers
        return 2
    if a.worker:
        return worker(a)
    runs = []
    for n in a.threads:
        if not a.json:
            print(f"[{n} thread{'s' if n > 1 else ''}: {', '.join(a.models)}]", file=sys.stderr,
                  flush=True)
        runs.append(_run_threads(a, n))
    rows = [r for run in runs for r in run["rows"]]
    slowing = {k: os.environ[k] for k in SLOWING if k in os.environ}
    out = {"rows": rows, "kernel": runs[0]["kernel"], "numpy": runs[0]["numpy"],
           "torch": runs[0]["torch"], "env": slowing, "steps": a.steps, "rounds": a.rounds}
    if a.json:
        print(json.dumps(out))
        return 0
    print(f"training step, minipar against PyTorch {out['torch']} (CPU, float32, Adam); "
          f"NumPy {out['numpy']}, OpenBLAS kernel {out['kernel'] or 'unknown'}; median of "
          f"{a.steps} steps each")
    print(f"{'model':<11} {'threads':>7} {'minipar ms':>11} {'torch ms':>9} {'ratio':>6} "
          f"{'optim, minipar':>15} {'torch':>6} {'per-op ms':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<11} {r['threads']:>7} {r['minipar_ms']:>11.2f} "
              f"{r['torch_ms']:>9.2f} {r['ratio']:>6.2f} {r['minipar_optim']:>15.1%} "
              f"{r['torch_optim']:>6.1%} {r['per_op_ms']:>10.2f} {r['per_op_ratio']:>6.2f}")
    met = sum(r["ratio"] <= 1.0 for r in rows)
    print(f"at or below 1.0x PyTorch: {met} of {len(rows)} cells; optimizer (zero_grad and "
          f"Adam) at most 10% of minipar's step: {sum(r['minipar_optim'] <= 0.1 for r in rows)} "
          f"of {len(rows)}")
    print(f"at or below 1.0x PyTorch without oneDNN (per-op: its LSTM a step at a time, as "
          f"minipar's): {sum(r['per_op_ratio'] <= 1.0 for r in rows)} of {len(rows)} cells")
    for k, v in slowing.items():
        print(f"warning: {k}={v} is set: it can slow NumPy's BLAS; unset it for this "
              f"benchmark (env -u {k} ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

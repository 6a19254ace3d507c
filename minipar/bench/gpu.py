"""The LSTM training step on a GPU (CuPy) against the CPU, and against PyTorch on CUDA.

    python -m minipar.bench gpu [--steps 20] [--vocab 65] [--embed 64] [--hidden 256]
                                [--batch 32] [--seq 64]

The step of ``bench lstm`` (embedding, one LSTM layer, linear decoder; cross-entropy, Adam;
float32) timed on ``cuda`` (the GPU synchronised after each step, so the time is the whole
step) and on the CPU, then ``torch.nn`` on CUDA when a CUDA build of torch is installed.
Prints the device's name, the median step times and their ratios, then how far training
on the GPU strays from the CPU: the LSTM LM and the classifier trained for ``--parity-steps``
steps in float64 from the same seed on both, and the largest relative difference of any
parameter (``largest_differences``). Without CuPy or a GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from minipar.autograd import ops
from minipar.bench.lstm import CharLSTM
from minipar.core import backend
from minipar.nn.optim import Adam


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed steps per device (20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--parity-steps", type=int, default=50,
                   help="float64 training steps compared with the CPU (50; 0: none)")
    for name, default in (("vocab", 65), ("embed", 64), ("hidden", 256), ("batch", 32),
                          ("seq", 64)):
        p.add_argument(f"--{name}", type=int, default=default)
    return p.parse_args(argv)


def _minipar(device: str, a, ids, targets, sync) -> float:
    backend.set_device(device)
    backend.seed(0)
    model = CharLSTM(a.vocab, a.embed, a.hidden)
    opt = Adam(model.parameters(), lr=1e-3)
    x, y = backend.from_numpy(ids), backend.from_numpy(targets)
    times = []
    for k in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        ops.cross_entropy(model(x), y).backward()
        opt.step()
        sync()
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    backend.set_device("cpu")
    return statistics.median(times)


def largest_differences(device: str, steps: int = 50) -> dict[str, float]:
    """For the LSTM LM and the classifier: ``steps`` training steps in float64 on ``device``
    and on the CPU from one seed, then max over parameters of max|a - b| / max|b|."""
    from minipar.training.tasks import default_config, get_task, train

    out = {}
    old = backend.default_dtype()
    backend.set_default_dtype("float64")
    try:
        for kind in ("lstm", "classifier"):
            cfg = default_config(kind, steps=steps, seed=3, max_chars=20000, dtype="float64",
                                 **({"hidden": 32, "embed": 16} if kind == "lstm" else {}))
            task = get_task(kind)
            data = task.load_data(cfg)
            states = []
            for where in (device, "cpu"):
                backend.set_device(where)
                backend.seed(cfg.seed)
                states.append(train(task, cfg, data, log=None).model.state_dict())
            out[kind] = max(float(np.abs(states[0][k] - b).max() / max(np.abs(b).max(), 1e-300))
                            for k, b in states[1].items())
    finally:
        backend.set_device("cpu")
        backend.set_default_dtype(old)
    return out


def _torch(a, ids, targets) -> tuple[float, str] | None:
    try:
        import torch  # optional: only to compare with
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    torch.manual_seed(0)
    embed = torch.nn.Embedding(a.vocab, a.embed).to(dev)
    lstm = torch.nn.LSTM(a.embed, a.hidden, batch_first=True).to(dev)
    head = torch.nn.Linear(a.hidden, a.vocab).to(dev)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.as_tensor(ids, device=dev)
    y = torch.as_tensor(targets, device=dev)
    times = []
    for k in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        out, _ = lstm(embed(x))
        torch.nn.functional.cross_entropy(head(out.reshape(-1, a.hidden)), y).backward()
        opt.step()
        torch.cuda.synchronize()
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.__version__


def main(argv=None) -> int:
    a = _parse(argv)
    try:
        backend.set_device("cuda")
    except backend.BackendError as exc:
        print(f"minipar: error: bench gpu: {exc}", file=sys.stderr)
        return 2
    cupy = backend.module()
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    backend.set_device("cpu")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, a.vocab, size=(a.batch, a.seq))
    targets = rng.integers(0, a.vocab, size=a.batch * a.seq)
    gpu = _minipar("cuda", a, ids, targets, lambda: cupy.cuda.Device().synchronize())
    cpu = _minipar("cpu", a, ids, targets, lambda: None)
    print(f"device: {name}; CuPy {cupy.__version__}; step V{a.vocab} E{a.embed} H{a.hidden} "
          f"B{a.batch} T{a.seq}, float32, median of {a.steps} steps")
    print(f"minipar on cuda: {gpu * 1e3:.2f} ms/step")
    print(f"minipar on cpu:  {cpu * 1e3:.2f} ms/step   (cuda is {cpu / gpu:.2f}x faster)")
    torch_res = _torch(a, ids, targets)
    if torch_res is None:
        print("torch on cuda:   not measured (no CUDA build of torch installed)")
    else:
        t, version = torch_res
        print(f"torch {version} on cuda: {t * 1e3:.2f} ms/step   (minipar/torch = {gpu / t:.2f})")
    if a.parity_steps > 0:
        diff = largest_differences("cuda", a.parity_steps)
        print(f"largest relative difference from the CPU after {a.parity_steps} float64 "
              "training steps: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
    return 0

"""Data-parallel scaling: tokens/s of ``minipar.train`` on 1, 2, 4 ranks, and efficiency.

    python -m minipar.bench scaling [--models lstm,mlp] [--ranks 1,2,4] [--steps 60] [--json]
    python -m minipar.bench scaling --targets [--models lstm,mlp,classifier] [--repeat 3]
        [--predict 10GbE --to 64 --plot docs/img/scaling-predicted.png]

``--targets`` also prints the bounds that splitting the batch alone sets on E(2) and on
p4 / p2 (``bound_line``).

Each point is one ``mpiexec -n P python -m minipar.train --model M --steps S`` run with the
model's default size; its ``summary.json`` gives tokens/s (global tokens over training wall
time) and each rank's communication seconds from the trace. Parallel efficiency on p ranks:

    E(p) = (tokens/s on p ranks) / (p * tokens/s on 1 rank)

The global batch is the same for every p (strong scaling: each rank gets 1/p of the rows).
On a machine with c cores, E(p) for p > c is bounded by c / p: ranks share cores.

``--predict NETWORK`` adds the advisor's prediction (``planning/advise.py``, the model's
steps timed here by ``training/profile.py``): tokens/s = B T / predicted step of the
recommended method (T = 1 for the MLP and the classifier, whose summary counts rows), for
this machine (its calibration, ranks sharing its cores) at the measured p, and for one
rank per core on hosts joined by NETWORK up to ``--to`` ranks. ``--plot`` draws both
beside the measured points, one panel per model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from minipar.comm import launch


def run_point(model: str, ranks: int, steps: int, extra: list[str], env=None) -> dict:
    out = tempfile.mkdtemp(prefix=f"minipar-scaling-{model}-{ranks}-")
    cmd = [launch.find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "minipar.train",
           "--model", model,
           "--steps", str(steps), "--out", out, "--quiet", "--sample-chars", "0", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        s = json.load(f)
    shutil.rmtree(out, ignore_errors=True)
    comm = max(r["comm_s"] for r in s["per_rank"])
    return {"model": model, "ranks": ranks, "steps": s["steps"], "tokens_per_s": s["tokens_per_s"],
            "train_s": s["train_s"], "comm_share": comm / s["train_s"] if s["train_s"] else 0.0,
            "command": f"mpiexec -n {ranks} python -m minipar.train --model {model} "
                       f"--steps {steps} {' '.join(extra)}".strip()}


# issue targets: E(2) on a one-thread baseline, p=2 over one process on every core, p=4
# over p=2; steps long enough for a stable rate on this machine (the MLP's step is 2 ms)
TARGET_E2 = {"lstm": 0.90, "classifier": 0.90, "mlp": 0.75}
TARGET_STEPS = {"lstm": 200, "classifier": 150, "mlp": 1000}


def targets(models, steps, extra, repeat: int = 1) -> list[dict]:
    """Per model: one process on one BLAS thread and on all of them, then 2 and 4 ranks
    (one BLAS thread each, as minipar sets them), and the three ratios with their targets.
    Then one process on one thread at the rows a rank gets on 2 and on 4 ranks (B/2, B/4 of
    the global batch B), for the bounds of ``bound_line``. With ``repeat`` the runs are made
    that many times in turn, and each point is the median of its runs (the ratios are of
    the medians)."""
    one = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    every = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = []
    for m in models:
        n = steps or TARGET_STEPS.get(m, 200)
        B = global_batch(m, extra)
        points = ((1, one, extra), (1, every, extra), (2, one, extra), (4, one, extra),
                  (1, one, [*extra, "--batch-size", str(B // 2)]),
                  (1, one, [*extra, "--batch-size", str(B // 4)]))
        runs = [[run_point(m, p, n, x, env)["tokens_per_s"] for p, env, x in points]
                for _ in range(repeat)]
        t1, tall, t2, t4, half, quarter = (statistics.median(col) for col in zip(*runs))
        out.append({"model": m, "steps": n, "repeat": repeat, "one_thread": t1,
                    "all_threads": tall, "p2": t2, "p4": t4, "e2": t2 / (2 * t1),
                    "e2_target": TARGET_E2.get(m, 0.90), "p2_over_threads": t2 / tall,
                    "p4_over_p2": t4 / t2, "batch": B, "half": half, "quarter": quarter,
                    "e2_bound": half / t1, "p4_bound": quarter / half})
    return out


def global_batch(model: str, extra) -> int:
    """The global batch of ``minipar.train --model MODEL EXTRA``: its --batch-size, else the
    model's default."""
    from minipar.training.tasks import default_config
    given = [extra[i + 1] for i, x in enumerate(extra[:-1]) if x == "--batch-size"]
    given += [x.split("=", 1)[1] for x in extra if x.startswith("--batch-size=")]
    return int(given[-1]) if given else default_config(model).batch_size


def print_targets(rows) -> None:
    print(f"{'model':<11} {'1 proc 1 thr':>12} {'1 proc all':>11} {'p=2':>10} {'p=4':>10}  "
          f"{'E(2)':>11}  {'p2 / 1 proc all':>15}  {'p4 / p2':>9}")
    for r in rows:
        def mark(v, t):
            return f"{v:.2f} {'ok' if v >= t else '--'}"
        print(f"{r['model']:<11} {r['one_thread']:>12,.0f} {r['all_threads']:>11,.0f} "
              f"{r['p2']:>10,.0f} {r['p4']:>10,.0f}  {mark(r['e2'], r['e2_target']):>11}  "
              f"{mark(r['p2_over_threads'], 1.5):>15}  {mark(r['p4_over_p2'], 0.9):>9}")
    print("targets: E(2) >= 0.90 (MLP 0.75), p=2 >= 1.5x one process on every core, "
          "p=4 >= 0.9x p=2; ok = met")
    for r in rows:
        print(needs_line(r))
    for r in rows:
        print(bound_line(r))


def needs_line(r: dict) -> str:
    """What "p=2 >= 1.5x one process on every core" asks of E(2) for this model:

        p2 / all = 2 E(2) t1 / all = 2 E(2) / s,   s = all / t1 (one process's gain from
        its other cores),   so  p2 / all >= 1.5  <=>  E(2) >= 0.75 s.
    """
    s = r["all_threads"] / r["one_thread"]
    return (f"{r['model']}: one process gains {s:.2f}x from its other cores, so p=2 >= 1.5x "
            f"of it needs E(2) >= {0.75 * s:.2f}" + (" (above 1: faster than linear)"
                                                      if 0.75 * s > 1 else ""))


def bound_line(r: dict) -> str:
    """What splitting the batch alone allows, communication free. With r(b) the tokens/s of
    one process on one thread at b rows (global batch B), and one rank per core:

        E(2) <= r(B/2) / r(B)          (each of 2 ranks runs B/2 rows on its own core)
        p4 / p2 <= r(B/4) / r(B/2)     (on 2 cores each core runs two steps of B/4 rows,
                                        in 2 t(B/4), where p=2 takes t(B/2))

    A step's fixed costs (the optimizer over every parameter, Python's per-call time, a
    product's set-up) do not shrink with the rows, so a smaller batch runs fewer tokens/s.
    These are bounds only where every row costs the same: the classifier's rows are padded
    to their rank's longest, and its ranks get rows chosen to pad little (the ``padded``
    balance), which one process at B/p rows does not."""
    B = r["batch"]
    head = (f"{r['model']}: one process, one thread, at {B // 2} and {B // 4} rows: "
            f"{r['half']:,.0f} and {r['quarter']:,.0f} tokens/s, ")
    if r["model"] == "classifier":
        return head + (f"the ratios E(2) {r['e2_bound']:.2f}, p4 / p2 {r['p4_bound']:.2f} "
                       f"are no bound here: a rank's rows are chosen to pad little")
    return head + (f"so even with free communication E(2) <= {r['e2_bound']:.2f} and "
                   f"p4 / p2 <= {r['p4_bound']:.2f} on 2 cores")


def predict(model: str, ranks, network: str, calibration=None) -> list[dict]:
    """[{ranks, tokens_per_s, method}] of the advisor's recommendation at each p."""
    from minipar.planning import advise as adv
    from minipar.training import profile

    w = profile.workload({"model": model})
    tokens = w.batch * (w.tokens_per_row if model == "lstm" else 1)  # as summary.json counts
    advice = adv.advise(w, ranks, adv.network(network, calibration))
    return [{"ranks": p, "tokens_per_s": tokens / b.step, "method": b.method}
            for p, b in sorted(advice.best.items()) if b]


def plot(measured: dict, here: dict, far: dict, network: str, path) -> str:
    """One panel per model: measured tokens/s (dots), predicted here and on ``network``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(measured)
    fig = Figure(figsize=(5.5 * len(models), 4), layout="constrained")
    for ax, m in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        for rows, label, style in ((far[m], f"predicted, {network}, one rank per core", "-"),
                                   (here[m], "predicted, this machine", "--")):
            ax.plot([r["ranks"] for r in rows], [r["tokens_per_s"] for r in rows], style,
                    marker=".", label=label)
        ax.plot([r["ranks"] for r in measured[m]], [r["tokens_per_s"] for r in measured[m]],
                "o", color="red", label="measured, this machine")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(title=f"{m}: strong scaling (fixed global batch)", xlabel="ranks p",
               ylabel="examples/s" if m == "classifier" else "tokens/s")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    FigureCanvasAgg(fig)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench scaling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lstm,mlp")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--steps", type=int, help="training steps per run (60; with --targets: "
                    "lstm 200, classifier 150, mlp 1000)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--predict", metavar="NETWORK", help="also the advisor's prediction on "
                    "this named network (10GbE, 100Gb-IB, alpha=..,beta=..)")
    ap.add_argument("--to", type=int, default=64, help="--predict: up to this many ranks")
    ap.add_argument("--calibration", help="--predict: this machine's calibration, or "
                    "P=PATH,... (default: the saved one)")
    ap.add_argument("--plot", help="--predict: write the picture here")
    ap.add_argument("--targets", action="store_true", help="the scaling targets: one "
                    "process on one BLAS thread and on all, 2 and 4 ranks, the three "
                    "ratios, and their bounds from one process at a rank's rows")
    ap.add_argument("--repeat", type=int, default=1, help="--targets: runs of each point; "
                    "the median is used (1)")
    ap.add_argument("extra", nargs="*", help="more minipar.train options (after --)")
    a = ap.parse_args(argv)
    if a.targets:
        if a.repeat < 1:
            ap.error("--repeat must be at least 1")
        rows = targets(a.models.split(","), a.steps, a.extra, a.repeat)
        if a.json:
            print(json.dumps(rows, indent=1))
        else:
            print_targets(rows)
        return 0
    a.steps = a.steps or 60
    rows = []
    for model in a.models.split(","):
        base = None
        for p in (int(x) for x in a.ranks.split(",")):
            row = run_point(model, p, a.steps, a.extra)
            base = row["tokens_per_s"] if p == 1 else base
            row["efficiency"] = row["tokens_per_s"] / (p * base) if base else None
            rows.append(row)
            if not a.json:
                eff = f"{row['efficiency']:.2f}" if row["efficiency"] is not None else "-"
                print(f"{model:>5} p={p}  {row['tokens_per_s']:>10,.0f} tok/s  efficiency {eff:>5}"
                      f"  comm {100 * row['comm_share']:.0f}%  ({row['train_s']:.1f} s)",
                      flush=True)
    if a.predict:
        measured = {m: [r for r in rows if r["model"] == m] for m in a.models.split(",")}
        ps = sorted({r["ranks"] for r in rows})
        far_ps = [2**k for k in range(a.to.bit_length()) if 2**k <= a.to]
        here = {m: predict(m, ps, "calibrated", a.calibration) for m in measured}
        far = {m: predict(m, far_ps, a.predict) for m in measured}
        for m in measured:
            for r in here[m] + far[m]:
                where = "here" if r in here[m] else a.predict
                print(f"{m:>5} p={r['ranks']:<4} predicted {r['tokens_per_s']:>10,.0f} tok/s "
                      f"({where}, {r['method']})", flush=True)
        if a.plot:
            print(f"wrote {plot(measured, here, far, a.predict, a.plot)}")
    if a.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

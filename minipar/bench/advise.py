"""The advisor against real runs: predicted and measured step times, and its choices.

    python -m minipar.bench advise [--models lstm,mlp,classifier] [--ranks 1,2,4]
        [--syncs allreduce,average,ps] [--calibrate DIR | --calibration P=PATH,...]
        [--steps 30] [--repeat 1] [--out advise.md]

For each model (minipar.train's defaults) it times the model here (``training/profile``),
then for every p and sync method runs ``minipar.train`` for ``--steps`` steps
(``training/advise_runs``) and sets the median step beside ``planning/methods``'s
prediction, plus the pipeline (1F1B and GPipe, 4 micro-batches) of a 2-layer LSTM on 2
ranks. The advisor's own recommendation at each (model, p) is measured too.

    ratio = measured / predicted        within 25%: 0.75 <= ratio <= 1.25

Choices: at each (model, p > 1) the recommendation counts as right when its measured step
is the fastest measured there, or within 10% of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.planning import advise as adv
from minipar.planning.methods import candidates
from minipar.training import profile
from minipar.training.advise_runs import measure
from minipar.bench.costcheck import _bench, _per_p

SYNC_METHOD = {"allreduce": "allreduce ring", "average": "local SGD k=4 (ring)",
               "ps": "parameter server"}


def _cases(models, ranks, syncs):
    """(label, options, p, method) of every run."""
    for m in models:
        for p in ranks:
            for s in (["one process"] if p == 1 else [SYNC_METHOD[s] for s in syncs]):
                yield m, {"model": m}, p, s
    if 2 in ranks and "lstm" in models:
        for sched in ("1f1b", "gpipe"):
            yield "lstm 2 layers", {"model": "lstm", "layers": 2}, 2, f"{sched} M=4"


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench advise", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lstm,mlp,classifier")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--syncs", default="allreduce,average,ps")
    ap.add_argument("--calibration", help="P=PATH,... calibration per p (default: the saved)")
    ap.add_argument("--calibrate", metavar="DIR", help="run calibrate at each p > 1 first")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    ap.add_argument("--out", help="also write the Markdown here")
    args = ap.parse_args(argv)
    ranks = [int(x) for x in args.ranks.split(",")]
    models = args.models.split(",")
    syncs = args.syncs.split(",")
    if any(s not in SYNC_METHOD for s in syncs):
        raise UserError(f"--syncs {args.syncs!r}: use allreduce, average, ps")
    cals = _per_p(args.calibration, ranks, "--calibration")
    if args.calibrate:
        for p in (q for q in ranks if q > 1):
            cals[p] = str(Path(args.calibrate) / f"calibration-p{p}.json")
            _bench(p, ["calibrate", "--out", cals[p]], 600)
    net = adv.network("calibrated", cals or None)
    work, plans, rows = {}, {}, []
    for label, opts, p, method in _cases(models, ranks, syncs):
        if label not in work:
            work[label] = profile.workload(opts, log=print)
            plans[label] = adv.advise(work[label], ranks, net)
        todo = [method]
        best = plans[label].best.get(p)
        if best and p > 1 and label in models and best.method not in \
                [r["method"] for r in rows if r["label"] == label and r["p"] == p] + todo:
            todo.append(best.method)
        for m in todo:
            pred = next(r for r in candidates(work[label], net, p) if r.method == m)
            times = [measure(m, p, opts, work[label].settings, args.steps)
                     for _ in range(args.repeat)]
            t = statistics.median(times)
            rows.append({"label": label, "p": p, "method": m, "predicted": pred.step,
                         "measured": t, "ratio": t / pred.step,
                         "recommended": bool(best and best.method == m)})
            print(f"  {label} p={p} {m}: predicted {1e3 * pred.step:.1f} ms, measured "
                  f"{1e3 * t:.1f} ms", flush=True)
    text = report(rows, net, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def report(rows, net, args) -> str:
    ok = [r for r in rows if 0.75 <= r["ratio"] <= 1.25]
    errs = sorted(abs(r["ratio"] - 1) for r in rows)
    lines = [f"network: {net.source}", "",
             "| model | p | method | predicted ms | measured ms | ratio |",
             "|:---|---:|:---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['p']} | {r['method']}{' *' if r['recommended'] else ''}"
                     f" | {1e3 * r['predicted']:.1f} | {1e3 * r['measured']:.1f} | "
                     f"{r['ratio']:.2f} |")
    lines += ["", f"within 25%: {len(ok)} of {len(rows)} "
              f"({100 * len(ok) / len(rows):.0f}%); |ratio - 1| median "
              f"{100 * statistics.median(errs):.0f}%, 90th percentile "
              f"{100 * errs[int(0.9 * (len(errs) - 1))]:.0f}%"]
    miss = [r for r in rows if r not in ok]
    if miss:
        lines.append("misses: " + "; ".join(f"{r['label']} p={r['p']} {r['method']} "
                                            f"{r['ratio']:.2f}" for r in miss))
    choices = []
    for key in dict.fromkeys((r["label"], r["p"]) for r in rows if r["p"] > 1):
        here = [r for r in rows if (r["label"], r["p"]) == key and r["method"] in
                [x["method"] for x in rows if (x["label"], x["p"]) == key]]
        exact = [r for r in here if not r["method"].startswith("local SGD")]
        rec = [r for r in exact if r["recommended"]]
        if not rec:
            continue
        fastest = min(exact, key=lambda r: r["measured"])
        within = rec[0]["measured"] <= 1.10 * fastest["measured"]
        choices.append(within)
        lines.append(f"choice {key[0]} p={key[1]}: recommended {rec[0]['method']} "
                     f"{1e3 * rec[0]['measured']:.1f} ms, measured fastest "
                     f"{fastest['method']} {1e3 * fastest['measured']:.1f} ms: "
                     f"{'ok' if within else 'MISS'}")
    if choices:
        lines.append(f"choices right (fastest or within 10%): {sum(choices)} of {len(choices)}")
    lines.append("command: python -m minipar.bench advise " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v not in (None, False)))
    return "\n".join(lines)


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())

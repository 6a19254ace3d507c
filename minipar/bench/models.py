"""Neural LMs (LSTM, neural N-gram) against the exact perplexity floor of a Markov source.

    python -m minipar.bench models [--tokens 1000000] [--models lstm,mlp] [--json]

The data come from ``minipar.data.MarkovSource`` (order 2 over V = 20 symbols by default):
a chain whose entropy rate H is known exactly, so exp(H) is the lowest perplexity any model
can reach in expectation on its text. Both models are trained in one process with the
``minipar.training.tasks`` pieces (the same ones the parallel trainer calls), with Adam and
a learning rate falling linearly to 0, and scored on an independent validation stream:

    ratio = valid perplexity / exp(H)           (1.00 = as good as the true model)

The true model's own cross-entropy on that validation stream is printed too: it differs
from H only by sampling noise, and shows how much of the gap is noise.

On a 2-core machine, run with OPENBLAS_NUM_THREADS=1 when other work shares it (the models
are small: threads mostly add overhead). The run takes a few minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy

from minipar.core import backend
from minipar.training.tasks import default_config, get_task, train
from minipar.data import MarkovSource

# chosen on the order-2, V = 20 source (docs/benchmarks.md): both reach the floor's 5%
SETTINGS = {
    "lstm": dict(embed=64, hidden=256, batch_size=16, seq_len=32, lr=3e-3, epochs=4),
    "mlp": dict(embed=64, hidden=512, batch_size=128, lr=3e-3, epochs=4),
}


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=1_000_000, help="training tokens (10^6)")
    p.add_argument("--valid", type=int, default=100_000, help="validation tokens (10^5)")
    p.add_argument("--order", type=int, default=2, help="Markov order of the source (2)")
    p.add_argument("--vocab", type=int, default=20, help="source symbols V (20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="lstm,mlp", help="comma-separated: lstm, mlp")
    p.add_argument("--epochs", type=int, default=None, help="override both models' epochs")
    p.add_argument("--embed-std", type=float, default=None,
                   help="embedding init std (default: each model's own); 0.0577 is the "
                        "Embedding layer's U(-0.1, 0.1)")
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return p.parse_args(argv)


def true_model_loss(source, stream) -> float:
    """Mean -ln P(x_t | previous k symbols) under the source itself, over a validation
    stream of ids (symbol + 3, one closing </s> that is left out)."""
    x = numpy.asarray(stream[:-1]) - 3
    k, V = source.order, source.V
    state = numpy.zeros(len(x) - k, dtype=numpy.int64)
    for i in range(k):  # base-V code of the k symbols before each position
        state = state * V + x[i:len(x) - k + i]
    return float(-numpy.log(source.P[state, x[k:]]).mean())


def main(argv=None) -> int:
    a = _parse(sys.argv[1:] if argv is None else argv)

    markov = {"order": a.order, "vocab_size": a.vocab, "train": a.tokens, "valid": a.valid}
    source = MarkovSource(order=a.order, vocab_size=a.vocab, seed=a.seed)
    H = source.entropy_rate()
    rows = []
    log = print if not a.json else None
    if log:
        log(f"# source: Markov order {a.order}, V = {a.vocab}, seed {a.seed}; train "
            f"{a.tokens:,} tokens, valid {a.valid:,}; H = {H:.4f} nats, exp(H) = "
            f"{math.exp(H):.4f}")
    data = None
    for kind in [m.strip() for m in a.models.split(",") if m.strip()]:
        settings = dict(SETTINGS[kind])
        if a.epochs:
            settings["epochs"] = a.epochs
        cfg = default_config(kind, data="markov", markov=markov, seed=a.seed,
                             context=a.order, lr_schedule="linear", log_every=a.log_every,
                             embed_std=a.embed_std, **settings)
        task = get_task(kind)
        data = data or task.load_data(cfg)  # same streams for both models
        if log and len(rows) == 0:
            log(f"# true model on the validation stream: "
                f"{true_model_loss(source, data.valid):.4f} nats")
        t0 = time.perf_counter()
        result = train(task, cfg, data=data, log=log)
        wall = time.perf_counter() - t0
        m = result.metrics
        rows.append({"model": kind, "params": result.model.num_parameters(),
                     "epochs": cfg.epochs, "steps": len(result.history),
                     "step_ms": 1e3 * result.step_time, "wall_s": wall,
                     "valid_loss": m["loss"], "valid_ppl": m["ppl"],
                     "ratio": m["ppl"] / math.exp(H),
                     "dtype": str(backend.default_dtype().__name__),
                     "settings": settings})
    out = {"order": a.order, "vocab": a.vocab, "train_tokens": a.tokens,
           "valid_tokens": a.valid, "entropy_rate": H, "floor_ppl": math.exp(H),
           "true_model_valid_loss": true_model_loss(source, data.valid), "rows": rows}
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"\n{'model':>6} {'params':>8} {'epochs':>6} {'steps':>6} {'ms/step':>8} "
          f"{'wall s':>7} {'loss':>7} {'ppl':>8} {'ppl/exp(H)':>10} within 5%")
    for r in rows:
        print(f"{r['model']:>6} {r['params']:>8,} {r['epochs']:>6} {r['steps']:>6} "
              f"{r['step_ms']:>8.1f} {r['wall_s']:>7.0f} {r['valid_loss']:>7.4f} "
              f"{r['valid_ppl']:>8.4f} {r['ratio']:>10.4f} "
              f"{'yes' if r['ratio'] <= 1.05 else 'no'}")
    print(f"{'floor':>6} {'':>8} {'':>6} {'':>6} {'':>8} {'':>7} {H:>7.4f} "
          f"{math.exp(H):>8.4f} {1.0:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

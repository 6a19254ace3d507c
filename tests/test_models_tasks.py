"""Tasks: training lowers the loss, the classifier beats the bag of words, and the row-split
contract (sums and counts) that lets p ranks reproduce one process exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minipar.core import backend
from minipar.training.tasks import default_config, get_task, shard_batch, train

TINY_MARKOV = {"order": 1, "vocab_size": 6, "train": 6000, "valid": 2000}


def _markov_cfg(kind, **kw):
    base = dict(data="markov", markov=TINY_MARKOV, embed=8, hidden=16, batch_size=8,
                seq_len=16, context=2, lr=1e-2, log_every=10**9)
    base.update(kw)
    return default_config(kind, **base)


@pytest.mark.parametrize("kind,steps", [("lstm", 120), ("mlp", 300)])
def test_training_lowers_the_loss_towards_the_source_entropy(kind, steps):
    cfg = _markov_cfg(kind, steps=steps, batch_size=8 if kind == "lstm" else 64)
    task = get_task(kind)
    data = task.load_data(cfg)
    before = task.evaluate(task.build_model(cfg, len(data.vocab)), data.valid, cfg)
    result = train(task, cfg, data=data, log=None)
    after = result.metrics
    H = data.info["entropy_rate"]
    assert before["loss"] > math.log(6)  # 9 ids (6 symbols + 3 specials), untrained
    assert after["loss"] < before["loss"] - 0.5
    assert after["loss"] < H + 0.15, (after, H)
    assert after["ppl"] == pytest.approx(math.exp(after["loss"]))
    assert len(result.history) == steps


def test_lstm_on_a_tiny_text_corpus(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 40)
    cfg = default_config("lstm", data=str(path), embed=8, hidden=16, batch_size=4,
                         seq_len=16, steps=200, lr=1e-2, eval_batch=2, log_every=10**9)
    result = train(get_task("lstm"), cfg, log=None)
    first = np.mean([h[1] for h in result.history[:5]])
    last = np.mean([h[1] for h in result.history[-5:]])
    assert last < 0.5 * first
    text = get_task("lstm").sample(result.model, result.data.vocab, 40, 0.5, seed=1)
    assert text == get_task("lstm").sample(result.model, result.data.vocab, 40, 0.5, seed=1)
    assert isinstance(text, str) and len(text) > 0


def test_classifier_beats_the_bag_of_words_on_word_order():
    """Original vs shuffled sentences: the same bag of words, so only order tells them
    apart. Characters make the cue visible (an initial capital, a final period)."""
    common = dict(tokens="char", embed=16, hidden=32, steps=100, log_every=10**9)
    lstm = train(get_task("classifier"), default_config("classifier", **common), log=None)
    assert lstm.metrics["accuracy"] > 0.90, lstm.metrics
    bow = train(get_task("bow"), default_config("bow", **common), data=lstm.data, log=None)
    assert 0.40 <= bow.metrics["accuracy"] <= 0.60, bow.metrics


# --- the parallel contract, emulated in one process ---------------------------------------
def _grads(model):
    return [p.grad.copy() for p in model.parameters()]


def _split_equals_whole(kind, cfg, n_batches, splits):
    """Summing (loss_sum / n) gradients over row splits equals the whole batch's mean
    gradient, state carried per split; float64 to 1e-12."""
    task = get_task(kind)
    data = task.load_data(cfg)
    whole_model = task.build_model(cfg, len(data.vocab))
    part_model = task.build_model(cfg, len(data.vocab))
    whole_state, part_states = None, [None] * len(splits)
    batches = task.batches(data.train, cfg, epoch=0)
    for _, batch in zip(range(n_batches), batches):
        n = task.count(batch)
        whole_model.zero_grad()
        s, c, whole_state = task.loss(whole_model, batch, whole_state)
        assert c == n
        (s * (1.0 / n)).backward()
        part_model.zero_grad()
        total, counted = 0.0, 0
        for r, rows in enumerate(splits):
            s_r, c_r, part_states[r] = task.loss(part_model, shard_batch(batch, rows),
                                                  part_states[r])
            if c_r:
                (s_r * (1.0 / n)).backward()  # gradients accumulate: the "allreduce SUM"
            total, counted = total + s_r.item(), counted + c_r
        assert counted == n
        assert total / n == pytest.approx(s.item() / n, rel=1e-12)
        for g_whole, g_part in zip(_grads(whole_model), _grads(part_model)):
            np.testing.assert_allclose(g_part, g_whole, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_row_splits_reproduce_the_whole_batch(kind):
    cfg = _markov_cfg(kind, dtype="float64", batch_size=7)
    splits = [np.array([0, 1, 2]), np.array([3, 4]), np.array([5, 6]), np.array([], int)]
    _split_equals_whole(kind, cfg, 3, splits)


def test_row_splits_reproduce_the_whole_batch_classifier():
    cfg = default_config("classifier", tokens="char", embed=4, hidden=5, batch_size=5,
                         dtype="float64", max_examples=20)
    _split_equals_whole("classifier", cfg, 2, [np.array([0, 2, 4]), np.array([1, 3])])


def test_shard_batch_drops_rows_past_a_short_batch():
    batch = (np.arange(6).reshape(3, 2), np.arange(3))
    x, y = shard_batch(batch, [1, 2, 3, 4])
    assert x.tolist() == [[2, 3], [4, 5]] and y.tolist() == [1, 2]


def test_build_model_is_deterministic_and_honours_dtype():
    cfg = _markov_cfg("lstm", dtype="float64")
    task = get_task("lstm")
    a, b = task.build_model(cfg, 9), task.build_model(cfg, 9)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.dtype == np.float64, name
        np.testing.assert_array_equal(p.data, q.data)
    assert backend.default_dtype() == np.float32  # the scope did not leak


def test_train_steps_with_the_schedule(tmp_path):
    """minipar.train sets each step's rate from --lr-schedule; metrics.jsonl records it."""
    import json
    import subprocess
    import sys
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "minipar.train", "--model", "mlp", "--steps", "4",
                    "--lr", "0.01", "--lr-schedule", "linear", "--max-chars", "3000",
                    "--quiet", "--sample-chars", "0", "--out", str(out)],
                   check=True, timeout=120, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.0075, 0.005, 0.0025])


def test_learning_rate_schedules():
    from minipar.training.tasks import learning_rate

    const = default_config("mlp", lr=0.01)
    linear = default_config("mlp", lr=0.01, lr_schedule="linear")
    assert [learning_rate(const, s, 4) for s in range(4)] == [0.01] * 4
    assert [learning_rate(linear, s, 4) for s in range(4)] == pytest.approx(
        [0.01, 0.0075, 0.005, 0.0025])

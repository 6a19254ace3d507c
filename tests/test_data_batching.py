"""Batchers and the classification dataset."""

import numpy as np
import pytest

from minipar.data.batching import ClassifierBatches, ContextBatches, LMBatches
from minipar.data.classify import builtin_examples, load_classify, read_tsv
from minipar.data.tokenize import BOS
from minipar.core.errors import DataError


def test_lm_windows_are_contiguous_per_row():
    ids = np.arange(103)
    b = LMBatches(ids, batch=4, seq=8)
    windows = list(b)
    assert len(windows) == len(b) == 4  # rows of 26 ids: 25 targets, windows 8 8 8 1
    x = np.concatenate([w[0] for w in windows], axis=1)
    y = np.concatenate([w[1] for w in windows], axis=1)
    assert x.shape == (4, 25) and b.tokens == 100
    for r in range(4):  # each row is one contiguous stretch, y shifted by one
        assert np.array_equal(x[r], np.arange(25 * r, 25 * r + 25))
        assert np.array_equal(y[r], x[r] + 1)
    with pytest.raises(DataError, match="valid.txt.*too few"):
        LMBatches(np.arange(30), batch=4, seq=8, name="valid.txt")


def test_context_windows():
    ids = np.arange(3, 13)
    b = ContextBatches(ids, context=3, batch=4, shuffle=False)
    xs, ys = zip(*b)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert np.array_equal(y, ids)
    assert x[0].tolist() == [BOS, BOS, BOS] and x[5].tolist() == [5, 6, 7]
    s = ContextBatches(ids, context=2, batch=3, seed=1)
    first = np.concatenate([yb for _, yb in s])
    s.set_epoch(1)
    second = np.concatenate([yb for _, yb in s])
    assert sorted(first) == sorted(second) == list(ids) and not np.array_equal(first, second)
    with pytest.raises(DataError, match="fewer than one"):
        ContextBatches(ids, context=2, batch=64)


def test_builtin_classification_task():
    tr, va, te = builtin_examples(seed=0, max_sentences=200)
    assert (len(tr), len(va), len(te)) == (320, 40, 40)
    for split in (tr, va, te):
        labels = [lab for lab, _ in split]
        assert labels.count("original") == labels.count("shuffled")
        originals = sorted(sorted(t.split()) for lab, t in split if lab == "original")
        shuffled = sorted(sorted(t.split()) for lab, t in split if lab == "shuffled")
        assert originals == shuffled  # the same bags of words, within each split
    assert set(t for _, t in tr if _ == "original").isdisjoint(t for _, t in te)
    assert builtin_examples(seed=0, max_sentences=200) == (tr, va, te)
    assert builtin_examples(seed=1, max_sentences=200) != (tr, va, te)


def test_classifier_batches_pad_and_lengths():
    d = load_classify(max_examples=60, seed=3)
    assert d.labels == ["original", "shuffled"] and len(d.train) == 96
    batches = list(ClassifierBatches(d.train, batch=10, shuffle=False))
    assert len(batches) == 10
    x, lengths, labels = batches[0]
    assert x.shape == (10, lengths.max()) and labels.shape == (10,)
    for i in range(10):
        ids, lab = d.train[i]
        assert np.array_equal(x[i, :lengths[i]], ids) and (x[i, lengths[i]:] == 0).all()
        assert labels[i] == lab


def test_tsv_loading_and_errors(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("".join(f"{'pos' if i % 2 else 'neg'}\tsome text {i}\n" for i in range(20)))
    d = load_classify(good)
    assert (len(d.train), len(d.valid), len(d.test)) == (16, 2, 2)
    assert d.labels == ["neg", "pos"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tfine\nno tab here\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: .*TAB"):
        read_tsv(bad)
    one = tmp_path / "one.tsv"
    one.write_text("".join(f"pos\ttext {i}\n" for i in range(20)))
    with pytest.raises(DataError, match="1 label"):
        load_classify(one)

"""N-gram counting: by hand, merge of shards == whole, int64 keys."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minipar.data.corpus import load_corpus
from minipar.data.tokenize import Vocab, normalize_text
from minipar.models.ngram_lm import NGramModel
from minipar.models.ngram_counts import (count_ngrams, decode_keys, encode_keys, merge_counts,
                                         sentence_stream, split_sentences)

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
A, B = 3, 4  # ids of "a" and "b"; <s> = 1, </s> = 2


def as_dict(counts, k):
    return {tuple(g): int(c) for g, c in zip(counts.grams[k - 1].tolist(),
                                              counts.counts[k - 1].tolist())}


def test_sentence_stream_inserts_bos():
    assert sentence_stream([A, B, 2, A, 2]).tolist() == [1, A, B, 2, 1, A, 2]
    assert sentence_stream([A, B]).tolist() == [1, A, B, 2]  # an open sentence is closed
    with pytest.raises(ValueError):
        sentence_stream([1, A, 2])


def test_counts_by_hand():
    # <s> a b </s>   <s> a a b </s>
    c = count_ngrams([A, B, 2, A, A, B, 2], order=3)
    assert as_dict(c, 1) == {(1,): 2, (2,): 2, (A,): 3, (B,): 2}
    assert as_dict(c, 2) == {(1, A): 2, (A, B): 2, (B, 2): 2, (A, A): 1}
    assert as_dict(c, 3) == {(1, A, B): 1, (A, B, 2): 2, (1, A, A): 1, (A, A, B): 1}
    assert c.sentences == 2 and c.tokens == 7
    for k in range(3):  # rows sorted lexicographically, distinct
        rows = c.grams[k].tolist()
        assert rows == sorted(rows) and len(set(map(tuple, rows))) == len(rows)


def test_no_ngram_crosses_a_sentence():
    c = count_ngrams([A, 2, B, 2], order=4)
    assert as_dict(c, 3) == {(1, A, 2): 1, (1, B, 2): 1}
    assert len(c.grams[3]) == 0


def test_keys_roundtrip_and_overflow():
    rows = np.array([[0, 1, 2], [5, 0, 9], [9, 9, 9]])
    keys = encode_keys(rows, 10)
    assert keys.tolist() == [12, 509, 999]
    assert np.array_equal(decode_keys(keys, 10, 3), rows)
    with pytest.raises(OverflowError):
        encode_keys(np.zeros((1, 5), dtype=np.int64), 50_000)  # 50000^5 > 2^63


def test_split_sentences_cuts_after_eos():
    ids = np.array([A, 2, A, B, 2, B, B, B, 2, A, 2])
    parts = split_sentences(ids, 3)
    assert np.array_equal(np.concatenate(parts), ids)
    assert all(len(p) == 0 or p[-1] == 2 for p in parts)
    assert len(split_sentences(np.array([A, 2]), 4)) == 4


@FAST
@given(st.text(min_size=1), st.integers(1, 6), st.integers(1, 5))
def test_merge_of_shards_equals_whole(text, parts, order):
    norm = normalize_text(text)
    assume(norm)
    ids = Vocab.build(norm, "char").encode(norm, normalized=True)
    whole = count_ngrams(ids, order)
    merged = merge_counts([count_ngrams(p, order) for p in split_sentences(ids, parts)
                           if len(p)])
    assert merged.equals(whole)


def test_model_from_merged_shards_is_bit_identical():
    c = load_corpus(tokens="word", max_chars=40_000)
    whole = NGramModel.fit(c.train, c.vocab, order=4, smoothing="kn")
    shards = [count_ngrams(p, 4) for p in split_sentences(c.train, 3)]
    merged = NGramModel.from_counts(merge_counts(shards), c.vocab, "kn")
    for a, b in zip(whole.logp + whole.logbo, merged.logp + merged.logbo):
        assert np.array_equal(a, b)

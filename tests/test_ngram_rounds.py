"""Counting in rounds (minipar.training.ngram_shuffle): a rank's sentences sent as windows
and counted a piece at a time add up to the counts of the whole, for any cut into pieces;
and the ARPA file of P ranks counting in many uneven rounds is one process's, byte for
byte."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpiutil import run_mpi

from minipar.comm.communicator import init
from minipar.data.corpus import builtin_text
from minipar.data.tokenize import normalize_text
from minipar.models.ngram_counts import count_ngrams, sentence_stream
from minipar.training.ngram_shuffle import (OwnedCounts, merge_sorted, shuffle_windows,
                                            window_starts)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EOS, BOS = 2, 1


def _stream(sentences):
    return np.array([w for s in sentences for w in [*s, EOS]], dtype=np.int64)


@FAST
@given(st.sets(st.integers(0, 60), max_size=30), st.sets(st.integers(0, 60), max_size=30))
def test_merge_sorted_is_the_union_with_counts_added(a, b):
    a, b = [np.array(sorted(x), dtype=np.int64) for x in (a, b)]
    ca, cb = a * 10 + 1, b * 100 + 7
    keys, counts, moved, placed = merge_sorted(a, ca.copy(), b, cb.copy())
    want = np.union1d(a, b)
    assert np.array_equal(keys, want)
    total = np.zeros(61, np.int64)
    np.add.at(total, a, ca)
    np.add.at(total, b, cb)
    assert np.array_equal(counts, total[want])
    assert np.array_equal(keys[moved], a) and np.array_equal(keys[placed], b)


@FAST
@given(st.lists(st.lists(st.integers(3, 9), min_size=0, max_size=9), min_size=1, max_size=14),
       st.lists(st.integers(0, 14), max_size=5), st.integers(1, 5))
def test_rounds_add_up_to_the_counts_of_the_whole(sentences, cut_at, order):
    """Any cut of the sentences into pieces, each sent as windows and counted (one rank),
    gives count_ngrams' rows, counts and parents of the whole stream. The stream comes out sorted,
    whatever the cut, because the order-k table keeps its keys sorted as it grows."""
    comm = init()
    whole = count_ngrams(_stream(sentences), order, BOS, EOS)
    V = 10
    owned = OwnedCounts(V, order)
    cuts = np.array([0, V])
    bounds = sorted({0, len(sentences), *[min(c, len(sentences)) for c in cut_at]})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s = sentence_stream(_stream(sentences[lo:hi]), BOS, EOS)
        if order > 1:
            shuffle_windows(comm, s, *window_starts(s, EOS), cuts, owned)
    for k, (rows, counts, parents) in enumerate(owned.tables(), 2):
        assert np.array_equal(rows, whole.grams[k - 1]), k
        assert np.array_equal(counts, whole.counts[k - 1]), k
        want = whole.parents[k - 1]  # order 2's parents are word ids (all V unigrams kept)
        assert np.array_equal(parents, whole.grams[0][want, 0] if k == 2 else want), k


def test_arpa_of_uneven_rounds_on_ranks_equals_one_process(tmp_path):
    """Three ranks counting rounds of 400 tokens (their shards hold different numbers of
    rounds) write one process's ARPA file."""
    lines = normalize_text(builtin_text()).splitlines()[:1500]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def fit(n, name, extra=()):
        run_mpi(n, ["-m", "minipar.ngram", "fit", str(tmp_path / "t.txt"), "--order", "4",
                    "--quiet", "--arpa", str(tmp_path / name), *extra], timeout=120)
        return (tmp_path / name).read_bytes()

    one = fit(1, "one.arpa")
    assert fit(3, "three.arpa", ["--chunk-tokens", "400"]) == one

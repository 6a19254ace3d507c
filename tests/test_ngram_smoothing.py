"""Smoothing formulas against hand-computed values; distributions sum to 1."""

from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minipar.data.corpus import load_corpus
from minipar.data.tokenize import Vocab, normalize_text
from minipar.models.kneser_ney import FALLBACK, estimate_discounts
from minipar.models.ngram_lm import NGramModel

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOCAB = Vocab(["<unk>", "<s>", "</s>", "a", "b"], kind="word")
UNK, BOS, EOS, A, B = range(5)
IDS = VOCAB.encode("a b\na a b\n")  # <s> a b </s>   <s> a a b </s>


def dist(model, history):
    return model.distributions([history])[0]


def test_discounts_from_counts_of_counts():
    a = np.array([1] * 10 + [2] * 4 + [3] * 3 + [4] * 2 + [7])  # t1..t4 = 10, 4, 3, 2
    D, warn = estimate_discounts(a, 2)
    Y = 10 / (10 + 2 * 4)
    assert warn is None
    assert D == pytest.approx([1 - 2 * Y * 4 / 10, 2 - 3 * Y * 3 / 4, 3 - 4 * Y * 2 / 3])
    assert D == pytest.approx([5 / 9, 0.75, 41 / 27])
    D, warn = estimate_discounts(np.array([1, 1, 3, 4]), 1)  # t2 = 0
    assert D == FALLBACK and "fallback" in warn


def test_kneser_ney_bigram_by_hand():
    # Bigram a() raw: <s>a 2, ab 2, b</s> 2, aa 1 (t1=1, t2=3, t3=0 -> fallback 0.5 1 1.5).
    # Unigram a() = left-word types: a {<s>, a} 2, b {a} 1, </s> {b} 1 (also fallback).
    # Sum a = 4, lost = D2 + D1 + D1 = 2, gamma() = 1/2, |V'| = 4 (all but <s>).
    m = NGramModel.fit(IDS, VOCAB, order=2, smoothing="kn")
    assert m.discounts == [FALLBACK, FALLBACK] and len(m.warnings) == 2
    uni = {UNK: 1 / 8, A: 1 / 4 + 1 / 8, B: 1 / 8 + 1 / 8, EOS: 1 / 8 + 1 / 8}
    # Context a: ab (2 -> D2 = 1), aa (1 -> D1 = 0.5); sum 3, gamma(a) = 1.5/3 = 1/2.
    after_a = {A: 0.5 / 3 + uni[A] / 2, B: 1 / 3 + uni[B] / 2, EOS: uni[EOS] / 2,
               UNK: uni[UNK] / 2}
    # Context <s>: <s>a (2 -> D2 = 1); gamma(<s>) = 1/2.
    after_s = {A: 1 / 2 + uni[A] / 2, B: uni[B] / 2, EOS: uni[EOS] / 2, UNK: uni[UNK] / 2}
    for w, p in after_s.items():
        assert dist(m, [])[w] == pytest.approx(p)
    for w, p in after_a.items():
        assert dist(m, [A])[w] == pytest.approx(p)
    assert dist(m, [])[BOS] == 0
    # Context b was only seen before </s>: p(</s> | b) = (2 - 1)/2 + 1/2 p(</s>).
    assert dist(m, [B])[EOS] == pytest.approx(1 / 2 + uni[EOS] / 2)
    lp = m.log10probs(VOCAB.encode("a b\n"))
    assert lp == pytest.approx(np.log10([after_s[A], after_a[B], 1 / 2 + uni[EOS] / 2]))


def test_ml_addk_stupid_by_hand():
    ml = NGramModel.fit(IDS, VOCAB, order=2, smoothing="ml")
    assert dist(ml, [A])[[A, B, EOS]] == pytest.approx([1 / 3, 2 / 3, 0])
    assert dist(ml, [UNK])[A] == pytest.approx(3 / 7)  # unseen context: the unigram
    addk = NGramModel.fit(IDS, VOCAB, order=2, smoothing="addk", k=1.0)
    assert dist(addk, [A])[[A, B, EOS, UNK]] == pytest.approx([2 / 7, 3 / 7, 1 / 7, 1 / 7])
    assert dist(addk, [UNK])[A] == pytest.approx((3 + 1) / (7 + 4))
    sb = NGramModel.fit(IDS, VOCAB, order=2, smoothing="stupid", alpha=0.4)
    assert dist(sb, [A])[B] == pytest.approx(2 / 3)
    assert dist(sb, [A])[EOS] == pytest.approx(0.4 * 2 / 7)


def reference_kn(sentences, N, V):
    """The lmplz rules of docs/ngram.md written out with dicts and recursion."""
    raw, left = Counter(), defaultdict(set)
    for s in sentences:
        t = [BOS] + s + [EOS]
        for i in range(len(t)):
            for k in range(1, min(N, len(t) - i) + 1):
                raw[tuple(t[i:i + k])] += 1
    for g in raw:
        if len(g) > 1:
            left[g[1:]].add(g[0])
    a = {g: (c if len(g) == N or g[0] == BOS else len(left[g])) for g, c in raw.items()}
    a[(BOS,)] = 0
    D = {}
    for k in range(1, N + 1):
        t = Counter(v for g, v in a.items() if len(g) == k)
        Y = t[1] / (t[1] + 2 * t[2])
        D[k] = [j - (j + 1) * Y * t[j + 1] / t[j] for j in (1, 2, 3)]
    den, lost = defaultdict(float), defaultdict(float)
    for g, v in a.items():
        den[g[:-1]] += v
        lost[g[:-1]] += D[len(g)][min(v, 3) - 1] if v else 0.0

    def p(w, ctx):
        if not ctx:
            v = a.get((w,), 0)
            u = (v - (D[1][min(v, 3) - 1] if v else 0)) / den[()]
            return 0.0 if w == BOS else u + lost[()] / den[()] / (V - 1)
        lower = p(w, ctx[1:])
        if not den.get(ctx):
            return lower
        v = a.get(ctx + (w,), 0)
        u = (v - D[len(ctx) + 1][min(v, 3) - 1]) / den[ctx] if v else 0.0
        return u + lost[ctx] / den[ctx] * lower
    return p


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_matches_reference_on_real_text(order):
    c = load_corpus(tokens="char", max_chars=15_000)
    ids = c.train.tolist()
    sentences, cur = [], []
    for x in ids:
        if x == EOS:
            sentences.append(cur)
            cur = []
        else:
            cur.append(x)
    p = reference_kn(sentences, order, len(c.vocab))
    model = NGramModel.fit(c.train, c.vocab, order=order, smoothing="kn")
    test = c.test[:1500].tolist()
    ref, hist = [], []
    for x in test:
        ctx = tuple(([BOS] + hist)[-(order - 1):]) if order > 1 else ()
        ref.append(np.log10(p(x, ctx)))
        hist = [] if x == EOS else hist + [x]
    assert model.log10probs(c.test[:1500]) == pytest.approx(ref, abs=1e-12)


def contexts_of(model, ids):
    """Every distinct history (as the model sees it) of every token of ``ids``."""
    hist, seen = [], {}
    for x in ids.tolist():
        key = tuple(hist[-(model.order - 1):]) if model.order > 1 else ()
        seen[key] = list(key)
        hist = [] if x == EOS else hist + [x]
    return list(seen.values())


@FAST
@given(st.text(min_size=1, max_size=300), st.integers(1, 4),
       st.sampled_from(["kn", "ml", "addk"]), st.sampled_from(["char", "word"]))
def test_distributions_sum_to_one(text, order, smoothing, kind):
    norm = normalize_text(text)
    assume(norm and not set(norm.split()) & {"<s>", "</s>", "<unk>"})
    vocab = Vocab.build(norm, kind)
    ids = vocab.encode(norm, normalized=True)
    model = NGramModel.fit(ids, vocab, order=order, smoothing=smoothing, k=0.5)
    unseen = np.array([vocab.unk_id, 3, vocab.eos_id])  # contexts never seen in training
    ctxs = contexts_of(model, np.concatenate([ids, unseen]))
    sums = model.distributions(ctxs).sum(axis=1)
    assert sums == pytest.approx(np.ones(len(ctxs)), abs=1e-9)


@pytest.mark.parametrize("smoothing", ["kn", "ml", "addk", "stupid"])
def test_a_model_without_its_counts_has_the_same_tables(smoothing):
    """keep_counts=False (minipar.ngram fit without --out) lets the raw counts go: the
    tables are the same bits, and saving says why it cannot."""
    from minipar.models.ngram_counts import count_ngrams

    corpus = load_corpus(None, tokens="word", max_chars=20000)
    ids, vocab = corpus.train, corpus.vocab
    ref = NGramModel.from_counts(count_ngrams(ids, 4), vocab, smoothing)
    counts = count_ngrams(ids, 4)
    lean = NGramModel.from_counts(counts, vocab, smoothing, keep_counts=False)
    assert counts.counts is None and lean.counts is None
    if ref.logp is not None:  # add-k scores from its own copy of the counts instead
        for a, b in zip(ref.logp + ref.logbo, lean.logp + lean.logbo):
            assert np.array_equal(a, b)
    assert np.array_equal(ref.log10probs(corpus.valid), lean.log10probs(corpus.valid))
    with pytest.raises(ValueError, match="keep_counts=False"):
        lean.save("unused.npz")


def test_a_write_only_model_writes_the_same_file(tmp_path):
    """queries=False (minipar.ngram fit with no test text and no sample) lets the index's
    keys go too: the ARPA file is the same bytes, and a query says why it cannot run."""
    from minipar.models.ngram_counts import count_ngrams

    corpus = load_corpus(None, tokens="word", max_chars=20000)
    ids, vocab = corpus.train, corpus.vocab
    NGramModel.from_counts(count_ngrams(ids, 4), vocab).write_arpa(tmp_path / "a.arpa")
    lean = NGramModel.from_counts(count_ngrams(ids, 4), vocab, keep_counts=False,
                                  queries=False)
    lean.write_arpa(tmp_path / "b.arpa")
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    with pytest.raises(RuntimeError, match="written only"):
        lean.log10probs(corpus.valid)

"""Smoothed probabilities from n-gram counts: interpolated modified Kneser-Ney (the rules of
KenLM's lmplz, docs/ngram.md), maximum likelihood and the relative frequencies of Stupid
Backoff. Each builder returns per-order tables aligned with the sorted grams of a
``GramIndex``: ``logp[k-1][i]`` = log10 p(last word | rest) of k-gram i and
``logbo[k-1][i]`` = log10 backoff weight of k-gram i used as a context.

Modified Kneser-Ney, per order (Chen & Goodman 1998, eq. 26; lmplz):

    a(g)    adjusted count: the raw count at the top order and for g starting with <s>;
            else the number of distinct words x seen left of g (N_{1+}(. g)); a(<s>) = 0
    t_j     number of g of the order with a(g) = j
    Y       = t1 / (t1 + 2 t2)
    D_j     = j - (j + 1) Y t_{j+1} / t_j,   j = 1, 2, 3  (D_3 for every a >= 3)
    u(w|c)  = (a(cw) - D(a(cw))) / sum_x a(cx)
    gamma(c)= (D1 N1(c) + D2 N2(c) + D3 N3+(c)) / sum_x a(cx)
    p(w|c)  = u(w|c) + gamma(c) p(w|c')          (c' = c without its first word)
    p(w)    = u(w) + gamma() / |V'|              (|V'| = every id but <s>)

When t1, t2 or t3 is 0, or some D_j falls outside [0, j], the order gets lmplz's fallback
discounts (0.5, 1, 1.5) and a warning, instead of lmplz's refusal.
"""

from __future__ import annotations

import numpy as np

from minipar.models.ngram_counts import row_numbers

__all__ = ["adjusted_counts", "estimate_discounts", "kn_tables", "kn_unigrams", "kn_order",
           "ml_tables", "top_backoffs", "log10", "FALLBACK"]

FALLBACK = (0.5, 1.0, 1.5)
_BLOCK = 1 << 16  # grams combined at once in kn_order: the block's temporaries stay small


def log10(x, out=None):
    """np.log10 with log10(0) = -inf and no warning (an unseen event's log probability)."""
    with np.errstate(divide="ignore"):
        return np.log10(x, out=out)


def top_backoffs(n: int) -> np.ndarray:
    """log10 backoff 0 for each of the n top-order grams, which are never a context (the
    ARPA file has no backoff column there): a read-only zero, no memory per gram."""
    return np.broadcast_to(np.float64(0.0), (n,))


def suffix_ranks(index, grams) -> list:
    """sfx[k-1][i] = rank in order k-1 of the k-gram i without its first word (k >= 2).

    The suffix of w1..wk is the suffix of its prefix w1..w(k-1), extended by wk: one
    ``step`` per order, from the suffixes of the order below."""
    sfx = [None]
    for k in range(2, len(grams) + 1):
        rows = grams[k - 1]
        if k == 2:
            r = rows[:, 1].astype(np.int64)
        else:
            r = index.step(k - 1, sfx[k - 2][index.parent[k - 1]], rows[:, -1])
        if (r < 0).any():
            raise ValueError(f"a {k}-gram is listed without its suffix")
        sfx.append(row_numbers(r, len(grams[k - 2])))
    return sfx


def adjusted_counts(grams, counts, sfx, bos: int) -> list:
    """a(g) for every order (see the module docstring); ``counts`` are raw counts."""
    N = len(grams)
    a = [None] * N
    a[N - 1] = np.asarray(counts[N - 1], dtype=np.int64)  # read only: no copy needed
    for k in range(1, N):
        # Each distinct (k+1)-gram x g adds one to the continuation count of its suffix g.
        cont = np.bincount(sfx[k], minlength=len(grams[k - 1])).astype(np.int64)
        a[k - 1] = np.where(grams[k - 1][:, 0] == bos, counts[k - 1], cont)
    a[0] = a[0].copy()
    a[0][bos] = 0  # <s> is never predicted: no unigram mass
    return a


def discounts_from_t(t, order: int):
    """(D1, D2, D3+) from counts-of-counts t[1..4] (t[0] unused); (discounts, warning).

        Y = t1 / (t1 + 2 t2),   D_k = k - (k + 1) Y t_{k+1} / t_k      (k = 1, 2, 3)

    When some t_k is 0 or some D_k leaves [0, k], the fallback 0.5, 1, 1.5 with a warning."""
    t = np.asarray(t, dtype=np.float64)
    if (t[1:4] == 0).any():
        missing = [j for j in (1, 2, 3) if t[j] == 0]
        return FALLBACK, (f"{order}-gram discounts: no {order}-grams with adjusted count "
                          f"{missing[0]}; using fallback discounts 0.5 1 1.5")
    Y = t[1] / (t[1] + 2 * t[2])
    D = tuple(float(j - (j + 1) * Y * t[j + 1] / t[j]) for j in (1, 2, 3))
    for j, d in enumerate(D, start=1):
        if not 0.0 <= d <= j:
            return FALLBACK, (f"{order}-gram discount D{j} = {d:.4g} is outside [0, {j}]; "
                              f"using fallback discounts 0.5 1 1.5")
    return D, None


def estimate_discounts(a: np.ndarray, order: int):
    """(D1, D2, D3+) from counts-of-counts of adjusted counts ``a``; (discounts, warning)."""
    return discounts_from_t(np.bincount(np.minimum(a[a > 0], 5), minlength=6)[:5], order)


def kn_tables(index, grams, counts, bos: int, stage=None, release: bool = False,
              queries: bool = True):
    """Interpolated modified Kneser-Ney tables; returns (logp, logbo, discounts, warnings).
    ``stage(name)``, if given, marks the end of "adjust" and "discount" (a run's timings).
    ``release``: empty the list ``counts`` once the adjusted counts are made, so that the
    raw counts can go while the probabilities are made. ``queries=False``: the index's keys
    go once the suffixes are found (the model can then only be written)."""
    N = len(grams)
    sfx = suffix_ranks(index, grams)
    if not queries:
        index.drop_keys()
    a = adjusted_counts(grams, counts, sfx, bos)
    if release:
        counts.clear()
    if stage:
        stage("adjust")
    discounts, warnings = [], []
    for k in range(1, N + 1):
        D, warn = estimate_discounts(a[k - 1], k)
        discounts.append(D)
        if warn:
            warnings.append(warn)
    if stage:
        stage("discount")
    logp, logbo, p_lower = [], [], None
    for k in range(1, N + 1):
        if k == 1:
            p = kn_unigrams(a[0], discounts[0], index.V, bos)
        else:
            p, bo = kn_order(a[k - 1], discounts[k - 1], index.parent[k - 1],
                             index.sizes[k - 2], (p_lower, sfx[k - 1]))
            logbo.append(bo)
            logp.append(log10(p_lower, out=p_lower))  # order k-1's p is used: log in place
        a[k - 1] = sfx[k - 1] = None  # used once: the memory back before the next order
        p_lower = p
    logp.append(log10(p, out=p))
    logbo.append(top_backoffs(index.sizes[N - 1]))
    return logp, logbo, discounts, warnings


def _disc(a: np.ndarray, D) -> np.ndarray:
    return np.array((0.0,) + tuple(D))[np.minimum(a, 3)]  # D(a) with D(0) = 0


def kn_unigrams(a: np.ndarray, D, V: int, bos: int) -> np.ndarray:
    """p(w) = u(w) + gamma() / |V'| over the dense unigram table (a: adjusted counts)."""
    ak, disc = a.astype(np.float64), _disc(a, D)
    total = ak.sum()
    if total <= 0:
        raise ValueError("no training tokens to estimate unigrams from")
    p = (ak - disc) / total + disc.sum() / total / (V - 1)
    p[bos] = 0.0
    return p


def kn_order(a: np.ndarray, D, parent: np.ndarray, m: int, p_suffix: np.ndarray):
    """p(w | c) = u(w | c) + gamma(c) p(w | c') of one order k >= 2, and log10 gamma of the m
    contexts (the (k-1)-grams; 0 for one that is never a context). ``parent[i]``: the context
    of gram i; ``p_suffix[i]``: p of gram i's suffix c'w, or a pair (p_lower, rows) for
    p_lower[rows[i]], gathered a block at a time. Sums over a context run in the order of
    its grams, so any rank holding a whole context computes the same bits."""
    ak, disc = a.astype(np.float64), _disc(a, D)
    den = np.bincount(parent, weights=ak, minlength=m)
    lost = np.bincount(parent, weights=disc, minlength=m)
    seen = den > 0
    gamma = np.zeros(m)
    gamma[seen] = lost[seen] / den[seen]
    # p = (ak - disc) / den[parent] + gamma[parent] * p_suffix, the same operations in
    # place and a block at a time: one array as long as the order, not five (the top
    # order has the most grams, and these are a run's largest temporaries)
    p = ak
    p -= disc
    del disc
    for lo in range(0, len(p), _BLOCK):
        sl = slice(lo, lo + _BLOCK)
        ctx = parent[sl]
        p[sl] /= den[ctx]
        mix = gamma[ctx]
        mix *= p_suffix[sl] if isinstance(p_suffix, np.ndarray) else p_suffix[0][p_suffix[1][sl]]
        p[sl] += mix
    return p, np.where(seen, log10(np.where(seen, gamma, 1.0)), 0.0)


def ml_tables(index, grams, counts, bos: int):
    """Maximum likelihood: p(w | c) = c(cw) / sum_x c(cx), p(w) = c(w) / sum_{x != <s>} c(x).

    As backoff tables: a seen context has backoff weight 0 (log10 = -inf), so a word never
    seen after the longest seen context gets probability 0; an unseen context passes to the
    shorter one with weight 1. Returns (logp, logbo); Stupid Backoff uses the same logp.
    """
    N = len(grams)
    logp, logbo = [], []
    for k in range(1, N + 1):
        c = np.asarray(counts[k - 1], dtype=np.float64)
        if k == 1:
            c = c.copy()
            c[bos] = 0.0
            if c.sum() <= 0:
                raise ValueError("no training tokens to estimate unigrams from")
            logp.append(log10(c / c.sum()))
            continue
        parent = index.parent[k - 1]
        total = np.bincount(parent, weights=c, minlength=index.sizes[k - 2])
        logp.append(log10(c / total[parent]))
        logbo.append(np.where(total > 0, -np.inf, 0.0))
    logbo.append(np.zeros(index.sizes[N - 1]))
    return logp, logbo

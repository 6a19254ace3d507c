"""An interpolated modified Kneser-Ney model estimated and written by P ranks, none holding
it whole (``python -m minipar.ngram fit FILE --arpa M.arpa`` under mpiexec; docs/ngram.md).

Ownership. Word ids are cut into P ranges (``choose_cuts``: equal shares of the gram
start positions by first word); a gram of order k >= 2 belongs to the rank whose range
holds its first word. Everything KN needs about a context c then sits with one rank: the grams c w
all start with c's first word, and so does c itself. Unigrams are small (one entry per
word) and every rank holds all of them, summed with ``allreduce``.

Steps (each rank, its own grams; ``exchange`` is one ``alltoallv`` pair):

    count      a piece of the rank's sentences (rounds of ``chunk_tokens``: ngram_shuffle.py):
               its unigrams, and the window s[p .. p+N-1] of every gram start p
    shuffle    each window -> owner(first word), which counts the grams that start its
               windows, every order at once, and adds them to its own
    adjust     a(g) = N1+(. g): the distinct suffixes g of owned (k+1)-grams -> owner(g),
               which adds up the left extensions it receives (unigrams: an allreduce)
    discount   counts-of-counts t_{k,j} summed with one allreduce -> D1, D2, D3+
    estimate   p(w | c) = u(w | c) + gamma(c) p(w | c'): u and gamma are local; p(w | c')
               of the suffix c'w comes back from its owner along the route of "adjust"
    write      each rank formats its grams; section k is the concatenation in rank order,
               which is the sorted order of the one-process model, written at byte offsets

Every float is computed by the same operations on the same values in the same order as
``kn_tables`` on one process (sums over a context run in the context's own order), so the
probabilities, and the ARPA bytes, are equal bit for bit for any number of ranks.
"""

from __future__ import annotations

import os

import numpy as np

from minipar.comm import launch
from minipar.core.errors import DataError
from minipar.models.arpa import ARPA_END, arpa_header
from minipar.core import threads
from minipar.models.arpa_format import LinePool
from minipar.models.kneser_ney import (discounts_from_t, kn_order, kn_unigrams, log10,
                                       top_backoffs)
from minipar.models.ngram_counts import (row_numbers, sentence_stream, split_sentences,
                                         unique_inverse)
from minipar.models.ngram_index import GramIndex
from minipar.training.ngram_mapreduce import check_top_order, gather_counts
from minipar.training.ngram_shuffle import (OwnedCounts, alltoallv_rows, block_positions,
                                            choose_cuts, pack_rows, range_owner,
                                            shuffle_windows, window_starts)

__all__ = ["estimate_kn", "counts_on_root", "CHUNK_TOKENS", "DistributedKN",
           "write_arpa_ranks"]

CHUNK_TOKENS = 1 << 20  # a rank's tokens counted in one round (its windows' temporaries)

_CHUNK = 1 << 14  # lines formatted at once: their index arrays stay in the cache


def estimate_kn(comm, ids: np.ndarray, V: int, order: int, bos: int, eos: int,
                stage=lambda name: None, chunk_tokens: int = CHUNK_TOKENS,
                keep_counts: bool = True, queries: bool = True):
    """This rank's sentences ``ids`` counted, the counts shuffled to their owners and the KN
    tables estimated there: (model, owned, unigram counts, [sentences, tokens] of the whole
    text, grams per order). ``minipar.ngram fit`` and ``minipar.train --model ngram`` (kn)
    both run this; ``stage(name)`` marks the end of count, exchange and estimate. Counting
    and shuffling go in rounds of about ``chunk_tokens`` tokens a rank (ngram_shuffle.py).
    ``keep_counts=False``: each order's raw counts go once its adjusted counts are made
    (``owned`` then holds None for them: no model.npz can be written from it).
    ``queries=False``: the index's keys go once the suffixes are routed, so the model can
    be written but not queried (no --test, no --sample)."""
    pieces = split_sentences(ids, max(1, -(-len(ids) // max(1, chunk_tokens))), eos)
    with comm.phase("rounds"):
        rounds = int(comm.allreduce(np.array([len(pieces)], np.int64), op="max")[0])
    owned_counts = OwnedCounts(V, order)
    uni, tot, cuts = np.zeros(V, dtype=np.int64), np.zeros(2, np.int64), None
    for r in range(rounds):
        with comm.tracer.compute("count"):
            s = sentence_stream(pieces[r] if r < len(pieces) else np.zeros(0, np.int64),
                                bos, eos)
            ends = int(np.count_nonzero(s == eos))
            tot += [ends, len(s) - ends]
            uni += np.bincount(s, minlength=V)
            pos, room = window_starts(s, eos)
        stage("count")
        if cuts is None:
            cuts = choose_cuts(comm, s[pos], V)
        if order > 1:
            shuffle_windows(comm, s, pos, room, cuts, owned_counts)
        del s, pos, room
        stage("exchange")
    del pieces
    with comm.phase("totals"):
        comm.allreduce(tot)
    with comm.phase("shuffle 1-grams"):
        comm.allreduce(uni)
    owned = owned_counts.tables()
    with comm.phase("grams per order"):
        sizes = [V] + comm.allreduce(np.array([len(r) for r, _, _ in owned], np.int64)).tolist()
    launch.agree(comm, check_top_order, sizes, order)
    model = DistributedKN(comm, owned, uni, cuts, bos, stage, release=not keep_counts,
                          queries=queries)
    stage("estimate")
    return model, owned, uni, tot, sizes


def counts_on_root(comm, model, owned: list, uni: np.ndarray, sentences: int, tokens: int):
    """The whole model's counts on rank 0 (None elsewhere), for a model.npz: every rank's
    owned grams, gathered in rank order (their ranges follow the id order, so no sort),
    and the unigrams from rank 0 (every rank has them); with the (P, N) table of grams
    owned per rank and order."""
    none = (np.zeros((0, 1), np.int32), np.zeros(0, np.int64))
    parts = [(model.grams[0], uni) if comm.rank == 0 else none] + [o[:2] for o in owned]
    return gather_counts(comm, parts, sentences, tokens, in_order=True)


class _Route:
    """The distinct suffixes (order k) of this rank's (k+1)-grams, sent to their owners; kept
    so that the owners' answers (one value per suffix) come back along the same way.

    A suffix w2..w(k+1) is named by the suffix w2..wk of its gram's prefix, already routed
    one order below (``prev``), and the word w(k+1): it travels as (position of w2..wk in
    what went to that owner before, w(k+1), left extensions), and the owner finds its row
    with one ``step`` from the row it found for w2..wk. No rows of k ids are sorted or sent.
    """

    def __init__(self, comm, up, up_parents, prev, cuts, index, k: int):
        V, P = index.V, comm.size
        with comm.tracer.compute("adjust"):
            head, word, n_up = self._suffixes(up, up_parents, prev, cuts, V, P)
        self.recv_n = comm.alltoall(self.send_n, np.empty(P, dtype=np.int64))
        packed = pack_rows(self.order, head, word, n_up)
        del head, word, n_up
        self.order = row_numbers(self.order, len(self.order))
        got = alltoallv_rows(comm, packed, self.send_n, self.recv_n, 3, np.int64)
        del packed
        with comm.tracer.compute("adjust"):
            self._find(comm, got, prev, index, k, P)

    def _suffixes(self, up, up_parents, prev, cuts, V: int, P: int):
        """The distinct suffixes to send: (head, word, left extensions); sets the route."""
        # each array goes as soon as it is used: the top order's route is the run's peak
        if prev is None:  # k = 2: the suffix of x w2 w3 is the bigram w2 w3
            key = up[:, 1].astype(np.int64)
            key *= V
            key += up[:, 2]
        else:
            key = prev.inverse[up_parents].astype(np.int64)
            key *= V
            key += up[:, -1]
        uniq, inverse, n_up = unique_inverse(key)
        del key
        self.inverse = row_numbers(inverse, len(uniq))  # kept until the answer
        del inverse
        head, word = np.divmod(uniq, V)
        del uniq
        if prev is None:
            self.dest = range_owner(head, cuts).astype(np.int32)
        else:
            self.dest, head = prev.dest[head], prev.pos[head]
        self.order, self.send_n, pos = block_positions(self.dest, P)
        self.pos = row_numbers(pos, len(pos))
        return head, word, n_up

    def _find(self, comm, got, prev, index, k: int, P: int) -> None:
        """The row of each received suffix in this rank's order-k table, and its count."""
        self.recv_off = np.cumsum(self.recv_n) - self.recv_n
        if prev is None:
            prefix = got[:, 0]
        else:
            src = np.repeat(np.arange(P), self.recv_n)
            prefix = prev.rank[prev.recv_off[src] + got[:, 0]]
            del src
        self.rank = row_numbers(index.step(k, prefix, got[:, 1]), index.sizes[k - 1])
        del prefix
        if (self.rank < 0).any():
            raise RuntimeError(f"rank {comm.rank} received {k}-grams it does not own")
        self.got_n = got[:, 2].copy()  # a column of its own, not a view holding all three
        del got

    def answer(self, comm, values: np.ndarray):
        """values[rank of each received suffix] sent back: (the value of each distinct
        suffix, the suffix of each up-row), so that up-row i's value is v[rows[i]],
        gathered where it is used (``kn_order`` takes the pair, a block at a time)."""
        back = alltoallv_rows(comm, values[self.rank][:, None], self.recv_n, self.send_n, 1,
                              values.dtype)[:, 0]
        per_sfx = np.empty(len(back), dtype=values.dtype)
        per_sfx[self.order] = back
        return per_sfx, self.inverse


class DistributedKN:
    """KN tables of the grams this rank owns (orders >= 2) and of every unigram."""

    def __init__(self, comm, owned: list, uni: np.ndarray, cuts: np.ndarray, bos: int,
                 stage=lambda name: None, release: bool = False, queries: bool = True):
        V, N = len(uni), len(owned) + 1
        self.V, self.order, self.cuts = V, N, cuts
        self.grams = [np.arange(V, dtype=np.int32)[:, None]] + [r for r, _, _ in owned]
        with comm.tracer.compute("index"):
            self.index = index = GramIndex(self.grams, V, [None] + [p for _, _, p in owned])
        a = [None] * N
        a[N - 1] = owned[-1][1] if N > 1 else uni.copy()
        routes = [None] * (N + 1)  # routes[k]: suffixes of the k-grams, k >= 3
        for k in range(2, N):  # a of order k from the suffixes of the owned (k+1)-grams
            with comm.phase(f"continuation {k}-grams"):
                route = routes[k + 1] = _Route(comm, self.grams[k], owned[k - 1][2],
                                               routes[k], cuts, index, k)
            if routes[k] is not None:  # what only the next order's route needed
                routes[k].dest = routes[k].pos = None
            rows, cnt, par = owned[k - 2]
            cont = np.bincount(route.rank, weights=route.got_n, minlength=len(rows))
            a[k - 1] = np.where(rows[:, 0] == bos, cnt, cont.astype(np.int64))
            route.got_n = cont = cnt = None  # one order's left extensions alive at a time
            if release:  # order k's raw counts are not needed past this point (its
                owned[k - 2] = (rows, None, None)  # parents live on in the index)
        if release and N > 1:  # the top order's raw counts live on as a[N-1] until used
            owned[-1] = (owned[-1][0], None, None)
        if N > 2:  # the last route's ways on, which no order needs
            routes[N].dest = routes[N].pos = None
        if N > 1:
            cont = np.bincount(self.grams[1][:, 1], minlength=V).astype(np.int64)
            with comm.phase("continuation 1-grams"):
                comm.allreduce(cont)
            a[0] = cont
        if not queries:  # the routes are built: the keys are not needed to estimate
            index.drop_keys()
        a[0] = a[0].copy()
        a[0][bos] = 0  # <s> is never predicted
        stage("adjust")
        t = np.zeros((N, 5), dtype=np.int64)
        for k in range(N):
            if k > 0 or comm.rank == 0:  # unigrams: every rank has them all, count them once
                x = a[k]
                t[k] = np.bincount(np.minimum(x[x > 0], 5), minlength=6)[:5]
        with comm.phase("counts-of-counts"):
            comm.allreduce(t)
        self.t = t
        found = [discounts_from_t(t[k], k + 1) for k in range(N)]
        self.discounts = [d for d, _ in found]
        self.warnings = [w for _, w in found if w]
        stage("discount")
        self.logp, self.logbo = [], []
        p = kn_unigrams(a[0], self.discounts[0], V, bos)
        for k in range(2, N + 1):
            rows = self.grams[k - 1]
            if k == 2:
                p_sfx = (p, rows[:, 1])
            else:
                with comm.phase(f"suffix p {k - 1}-grams"):
                    p_sfx = routes[k].answer(comm, p)
                routes[k] = None  # each route answers once: its memory back at once
            with comm.tracer.compute("estimate"):
                p_lower, (p, bo) = p, kn_order(a[k - 1], self.discounts[k - 1],
                                               index.parent[k - 1], index.sizes[k - 2], p_sfx)
            a[k - 1] = p_sfx = None
            self.logbo.append(bo)
            self.logp.append(log10(p_lower, out=p_lower))  # used by order k: log in place
        self.logp.append(log10(p, out=p))
        self.logbo.append(top_backoffs(len(self.grams[-1])))
        index.drop_parents()  # the tables are built: queries need only the keys

    def mine(self, k: int, rank: int):
        """(rows, logp, logbo) of order k that rank ``rank`` writes (unigrams: its range)."""
        if k == 1:
            sl = slice(int(self.cuts[rank]), int(self.cuts[rank + 1]))
            return self.grams[0][sl], self.logp[0][sl], self.logbo[0][sl]
        return self.grams[k - 1], self.logp[k - 1], self.logbo[k - 1]


def write_arpa_ranks(comm, path, tokens, model: DistributedKN, bos: int, progress=None) -> None:
    """Every rank writes its lines of each section at their byte offset in one file; the
    file appears under ``path`` only when every rank has written (a rename, as
    ``write_arpa``). The offsets come first, from the exact size of every rank's part of
    every section (one allgather), so each rank then streams its lines a chunk at a time."""
    N, pool = model.order, LinePool(tokens, threads.budget())
    fmt = pool.first
    parts = [_part(model, k, comm.rank, bos) for k in range(1, N + 1)]
    with comm.tracer.compute("sizes"):
        mine = np.array([_size(fmt, r, lp, bo) for r, lp, bo in parts], dtype=np.int64)
    with comm.phase("ARPA offsets"):
        nbytes = comm.allgather(mine, np.empty((comm.size, N), dtype=np.int64))
        grams = comm.allreduce(np.array([len(p[0]) for p in parts], np.int64))
    header = arpa_header(grams.tolist())
    titles = [f"\n\\{k}-grams:\n".encode() for k in range(1, N + 1)]
    starts = len(header) + np.cumsum([0] + [len(t) + int(nbytes[:, k - 1].sum())
                                            for k, t in enumerate(titles, 1)])
    tmp = f"{os.fspath(path)}.tmp{comm.bcast_obj(os.getpid())}"
    error = ""
    if comm.rank == 0:
        try:
            with open(tmp, "wb") as f:
                f.write(header)
        except OSError as exc:
            error = f"{path}: cannot write ({exc.strerror})"
    error = comm.allreduce_obj(error, max)
    if error:
        raise DataError(error)
    fd = os.open(tmp, os.O_WRONLY)
    try:
        for k, (rows, lp, bo) in enumerate(parts, 1):
            if progress:
                progress(f"writing {k}-grams")
            at = int(starts[k - 1])
            if comm.rank == 0:
                error = error or _pwrite(fd, titles[k - 1], at, path)
            at += len(titles[k - 1]) + int(nbytes[:comm.rank, k - 1].sum())
            jobs = ((k, (rows[i:i + _CHUNK], lp[i:i + _CHUNK],
                         None if bo is None else bo[i:i + _CHUNK]))
                    for i in range(0, len(rows), _CHUNK))
            with comm.tracer.compute(f"write {k}-grams"):
                for _, chunk in pool.stream(jobs):
                    error = error or _pwrite(fd, chunk, at, path)
                    at += len(chunk)
        if comm.rank == 0:
            error = error or _pwrite(fd, ARPA_END, int(starts[-1]), path)
    finally:
        os.close(fd)
    with comm.phase("ARPA written"):
        error = comm.allreduce_obj(error, max)
    if comm.rank == 0:
        if error:
            os.remove(tmp)
        else:
            os.replace(tmp, path)
    if error:
        raise DataError(error)


_SIZE_CHUNK = 1 << 18  # lines sized at once: the temporaries stay a few MB


def _size(fmt, rows, lp, bo) -> int:
    """``fmt.size`` of a part, a chunk of lines at a time."""
    return sum(fmt.size(rows[i:i + _SIZE_CHUNK], lp[i:i + _SIZE_CHUNK],
                        None if bo is None else bo[i:i + _SIZE_CHUNK])
               for i in range(0, len(rows), _SIZE_CHUNK))


def _part(model: DistributedKN, k: int, rank: int, bos: int):
    """(rows, log10p, log10backoff or None) of order k as this rank writes them."""
    rows, lp, bo = model.mine(k, rank)
    if k == 1:
        lp = np.where(rows[:, 0] == bos, 0.0, lp)  # placeholder: <s> is never predicted
    return rows, lp, bo if k < model.order else None


def _pwrite(fd: int, data: bytes, at: int, path) -> str:
    """Write all of ``data`` at offset ``at`` (pwrite may write less); "" or the error."""
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
    except OSError as exc:
        return f"{path}: cannot write ({exc.strerror})"
    return ""

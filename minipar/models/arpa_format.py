"""ARPA lines as bytes, built with array operations instead of one Python string per line.

A section of an ARPA file is n lines of the form

    log10p <TAB> w1 <SP> w2 ... wk [<TAB> log10backoff] <LF>

Every piece of a line is a slice of one source buffer: the token names (UTF-8, one after
the other), the separators, and the numbers, which are formatted into a fixed-width byte
matrix first. A chunk of lines is then (start, length) pairs in output order, and the
output is one gather from the source (the "ragged gather"):

    bytes = src[start_0 : start_0 + len_0] + src[start_1 : start_1 + len_1] + ...

(``ragged_gather``: one index per output byte, made by a cumulative sum, then one gather).
Chunks are independent, so ``LinePool`` formats several at once in threads (NumPy's loops
release the GIL: two threads formatted the benchmark's 264 MB in 1.2 s instead of 1.9 s
on two cores).

Numbers. x is written in fixed point with ``DECIMALS`` digits after the point:
q = round(|x| 10^D), integer part q // 10^D, fraction q mod 10^D (no point when it is 0),
"-" when x < 0 and q > 0; -inf is written -99 (SRILM's log10 0). The rounding error is at
most 0.5 10^-D in log10, a relative error of 1.2 10^-D in a probability.
"""

from __future__ import annotations

import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from minipar.core.ragged import ragged_gather
from minipar.data.tokenize import join_words

__all__ = ["DECIMALS", "LOG0", "format_numbers", "number_lengths", "LineFormatter", "LinePool"]

DECIMALS = 9
LOG0 = -99.0
_ZERO, _DOT, _MINUS, _TAB, _LF = ord("0"), ord("."), ord("-"), ord("\t"), ord("\n")


_PAIRS = np.array([list(f"{i:02d}".encode()) for i in range(100)], dtype=np.uint8).view(
    np.uint16).ravel()  # _PAIRS[i]: the two ASCII digits of i as one 16-bit word


def format_numbers(values: np.ndarray, decimals: int = DECIMALS, lead: int = 0):
    """(matrix, start, length): row i's text is ``matrix[i, start[i]:start[i] + length[i]]``.

    Layout of a row: [pad] [sign] [integer digits, right-aligned] [.] [decimals digits], the
    width made even so that the fraction, which ends the row, is written two digits at a time
    through a 16-bit view. Integral values are written without the point and the zeros.
    ``lead`` spare columns on the left and one on the right leave room for separators."""
    ip, fp, nint, digits, neg = _parts(values, decimals)
    point = 1 + lead + nint + (decimals + nint + lead) % 2  # the point; the fraction ends
    width = point + 1 + decimals                           # at an even column
    m = np.empty((len(ip), width + 2), dtype=np.uint8)  # + 2: even, and room for a separator
    x = ip
    for c in range(point - 1, point - 1 - nint, -1):
        x, d = np.divmod(x, 10)
        m[:, c] = d + _ZERO
    m[:, point] = _DOT
    m16, x = m.view(np.uint16), fp
    for c in range(width // 2 - 1, width // 2 - 1 - decimals // 2, -1):  # 16-bit columns
        x, g = np.divmod(x, 100)
        m16[:, c] = _PAIRS[g]
    if decimals % 2:
        m[:, point + 1] = x + _ZERO
    first = point - digits
    m[np.flatnonzero(neg), first[neg] - 1] = _MINUS
    start = first - neg
    return m, start, np.where(fp > 0, width, point) - start


def number_lengths(values: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    """The length of each number as ``format_numbers`` writes it, without writing it."""
    _, fp, _, digits, neg = _parts(values, decimals)
    return neg + digits + np.where(fp > 0, 1 + decimals, 0)


def _parts(values: np.ndarray, decimals: int):
    """(integer part, fraction as an integer, widest integer part's digits, each one's
    digits, negative) of the numbers as written: q = round(|x| 10^D), -inf as -99."""
    v = np.where(np.isfinite(values), values, LOG0).astype(np.float64)
    q = np.rint(np.abs(v) * 10 ** decimals).astype(np.int64)
    ip, fp = np.divmod(q, 10 ** decimals)
    nint = max(1, len(str(int(ip.max())))) if len(ip) else 1
    digits = np.ones(len(v), dtype=np.int64)  # integer digits used (0 has one)
    for p in range(1, nint):
        digits += ip >= 10 ** p
    return ip, fp, nint, digits, (v < 0) & (q > 0)


class LineFormatter:
    """Formats ARPA lines for one vocabulary. Source buffer: every token's UTF-8 bytes
    followed by a space (a word before the last is that piece; the last word is the piece
    without its space), then room for the numbers of one chunk. A line is k + 2 pieces:

        [log10p TAB] [w1 SP] .. [w(k-1) SP] [wk] [TAB log10backoff LF]   (or [LF])

    ``tokens``: the names as a list of str, or already as those bytes (``join_words``).
    """

    def __init__(self, tokens, like: LineFormatter | None = None):
        if like is not None:  # the same tokens: share the index, copy only the bytes
            self.nstart, self.nlen, self.lf = like.nstart, like.nlen, like.lf
            self.buf = like.buf[:self.lf + 1].copy()
            return
        # ARPA tokens hold no white space, so one join and one search find them all
        data = bytearray(tokens if isinstance(tokens, bytes) else join_words(tokens))
        data += b"\n"
        self.buf = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(self.buf == ord(" "))
        self.nstart = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        self.nlen = ends - self.nstart
        self.lf = len(self.buf) - 1  # the LF that ends a top-order line

    def _room(self, nbytes: int) -> int:
        base = self.lf + 1
        if len(self.buf) < base + nbytes:
            grown = np.empty(base + 2 * nbytes, dtype=np.uint8)
            grown[:base] = self.buf[:base]
            self.buf = grown
        return base

    def size(self, rows: np.ndarray, logp: np.ndarray, logbo=None) -> int:
        """The bytes ``lines`` would write for these lines."""
        n, k = rows.shape
        words = sum(int(self.nlen[rows[:, j]].sum()) for j in range(k)) + n * (k - 1)
        numbers = int(number_lengths(logp).sum()) + (int(number_lengths(logbo).sum()) + n
                                                     if logbo is not None else 0)
        return words + numbers + 2 * n  # a tab after log10p, a line feed

    def lines(self, rows: np.ndarray, logp: np.ndarray, logbo=None) -> bytes:
        """The ARPA lines of ``rows`` (ids, shape (n, k)), with the backoff column if given."""
        n, k = rows.shape
        if n == 0:
            return b""
        pm, ps, pl = format_numbers(logp)
        pm[np.arange(n), ps + pl] = _TAB
        mats, starts, lens = [pm], [np.arange(n) * pm.shape[1] + ps], [pl + 1]
        for j in range(k):
            w = rows[:, j]
            starts.append(self.nstart[w] - (1 << 40))  # marks: a name, not a number
            lens.append(self.nlen[w] + (j < k - 1))
        if logbo is not None:
            bm, bs, bl = format_numbers(logbo, lead=1)
            bm[np.arange(n), bs + bl] = _LF
            bm[np.arange(n), bs - 1] = _TAB
            starts.append(pm.size + np.arange(n) * bm.shape[1] + bs - 1)
            lens.append(bl + 2)
            mats.append(bm)
        else:
            starts.append(np.full(n, self.lf - (1 << 40)))
            lens.append(np.ones(n, dtype=np.int64))
        base = self._room(sum(m.size for m in mats))
        at = base
        for m in mats:
            self.buf[at:at + m.size] = m.ravel()
            at += m.size
        start = np.stack(starts, axis=1).ravel()
        start += np.where(start < 0, 1 << 40, base)
        return ragged_gather(self.buf[:at], start, np.stack(lens, axis=1).ravel()).tobytes()


class LinePool:
    """``LineFormatter.lines`` of many chunks in ``threads`` threads (at most MAX_THREADS),
    each with a formatter of its own (a formatter's buffer is reused from chunk to chunk);
    the results come back in the order of the chunks. One thread: a plain loop, no pool."""

    # each thread holds a copy of the token names and its chunk's index arrays, and one
    # thread writes the file: beyond a few, more threads cost memory and gain little
    MAX_THREADS = 4

    def __init__(self, tokens, threads: int = 1):
        self.threads = max(1, min(int(threads), self.MAX_THREADS))
        self.first = LineFormatter(tokens)
        self._free = queue.SimpleQueue()
        self._free.put(self.first)
        for _ in range(self.threads - 1):
            self._free.put(LineFormatter(tokens, like=self.first))

    def _lines(self, job) -> bytes:
        fmt = self._free.get()
        try:
            return fmt.lines(*job)
        finally:
            self._free.put(fmt)

    def stream(self, items):
        """For each (key, x) of ``items``: (key, the lines of x) when x is a job (a tuple
        (rows, logp, logbo or None)), else (key, x) as it is; in order. At most 2 x threads
        chunks are formatted ahead of the one handed back."""
        if self.threads == 1:
            for key, x in items:
                yield key, self._lines(x) if isinstance(x, tuple) else x
            return
        with ThreadPoolExecutor(self.threads) as pool:
            ahead = deque()
            for key, x in items:
                ahead.append((key, pool.submit(self._lines, x) if isinstance(x, tuple) else x))
                while len(ahead) > 2 * self.threads:
                    yield _done(*ahead.popleft())
            while ahead:
                yield _done(*ahead.popleft())


def _done(key, x):
    return key, x.result() if isinstance(x, Future) else x

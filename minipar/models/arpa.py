"""The ARPA back-off language model format: read and write.

    (blank line)
    \\data\\
    ngram 1=M1
    ...
    \\1-grams:
    log10p<TAB>w<TAB>log10backoff
    ...
    \\N-grams:
    log10p<TAB>w1 ... wN
    \\end\\

What we write: every listed gram with its log10 probability; every gram below the top
order with its log10 backoff (0 when it is never a context); the top order without one
(KenLM rejects a backoff there). ``<s>`` is written with log10 p = 0, a placeholder, as
lmplz does. log10 0 is written as -99 (the SRILM convention) and read back as 0. Numbers
are fixed point with 9 decimals, formatted as arrays (arpa_format.py). The file
starts with a blank line because older KenLM readers demand it.

Tokens may not contain white space, so character-level models write the space character as
``<space>`` (and read it back when told the model is character-level).
"""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from minipar.data.tokenize import SPECIALS
from minipar.core.errors import DataError
from minipar.core import threads
from minipar.models.arpa_format import LOG0 as _LOG0, LinePool

__all__ = ["write_arpa", "read_arpa", "arpa_header", "arpa_sections", "ARPA_END", "SPACE"]

SPACE = "<space>"
ARPA_END = b"\n\\end\\\n"
_CHUNK = 1 << 14  # lines formatted at once: their index arrays stay in the cache


@contextmanager
def _no_gc():
    """Reading and writing build millions of small lists and tuples; the cyclic collector,
    triggered every few hundred allocations, would rescan them again and again (8x slower)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def write_arpa(path, tokens, grams, logp, logbo, bos: int = 1, char_level: bool = False,
               progress=None) -> None:
    """Write tables aligned with ``grams`` (lists over orders) as an ARPA file, atomically.
    ``tokens``: the names, or word names already as ``join_words`` bytes."""
    names = (tokens if isinstance(tokens, bytes) else  # already join_words bytes
             [SPACE if (char_level and t == " ") else t for t in tokens])
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        # a second thread writes each chunk while the next is formatted (write releases
        # the GIL): the copy into the page cache runs beside the formatting
        with open(tmp, "wb") as f, ThreadPoolExecutor(1) as writer:
            pending = writer.submit(f.write, arpa_header([len(g) for g in grams]))
            pool = LinePool(names, threads.budget())
            for k, chunk in pool.stream(arpa_sections(grams, logp, logbo, bos)):
                if progress and chunk is None:
                    progress(f"writing {k}-grams")
                elif chunk is not None:
                    pending.result()
                    pending = writer.submit(f.write, chunk)
            pending.result()
            f.write(ARPA_END)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder gone: one line, no half-written file
        raise DataError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def arpa_header(sizes) -> bytes:
    """The blank line, ``\\data\\`` and one ``ngram k=m`` line per order."""
    return ("\n\\data\\\n" + "".join(f"ngram {k}={m}\n" for k, m in enumerate(sizes, 1))
            ).encode()


def arpa_sections(grams, logp, logbo, bos: int, top: int | None = None):
    """Yield (k, None) as order k starts, (k, bytes) for the section title, then (k, (rows,
    log10p, log10backoff or None)) per chunk of its lines, for ``LinePool.stream`` to format.
    ``top`` is the model's order (default: len(grams)); no backoff column there."""
    top = top or len(grams)
    for k in range(1, len(grams) + 1):
        yield k, None
        yield k, f"\n\\{k}-grams:\n".encode()
        rows = grams[k - 1]
        for lo in range(0, len(rows), _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            lp = logp[k - 1][sl]
            if k == 1:
                lp = np.where(rows[sl, 0] == bos, 0.0, lp)  # placeholder: <s> is never predicted
            yield k, (rows[sl], lp, logbo[k - 1][sl] if k < top else None)


def _bad(path, lineno, why):
    return DataError(f"{path}:{lineno}: not a valid ARPA file: {why}")


def read_arpa(path, char_level: bool = False):
    """Parse an ARPA file (see ``_read``)."""
    with _no_gc():
        return _read(os.fspath(path), char_level)


def _read(path, char_level):
    """Parse an ARPA file. Returns (tokens, grams, logp, logbo) with ``tokens`` our vocabulary
    order (<unk>, <s>, </s>, then the other unigrams in file order), and per order the gram
    rows (ids into ``tokens``, as listed), log10 probabilities and log10 backoffs (0 where
    absent). Values <= -99 are read as log10 0 = -inf. A missing <unk> gets probability 0."""
    if not os.path.exists(path):
        raise DataError(f"{path}: model file not found")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text, so not an ARPA file") from None
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise DataError(f"{path}: not an ARPA file (no \\data\\ line)")
    i += 1
    sizes = []
    while i < len(lines) and lines[i].strip().startswith("ngram "):
        try:
            k, m = lines[i].strip()[6:].split("=")
            k, m = int(k), int(m)
        except ValueError:
            raise _bad(path, i + 1, f"bad count line {lines[i]!r}") from None
        if k != len(sizes) + 1 or m < 0:
            raise _bad(path, i + 1, "n-gram counts must be listed for orders 1, 2, ... in turn")
        sizes.append(m)
        i += 1
    if not sizes:
        raise _bad(path, i + 1, "no 'ngram k=count' lines after \\data\\")
    N = len(sizes)
    words, logp, logbo = [], [], []
    for k in range(1, N + 1):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i == len(lines) or lines[i].strip() != f"\\{k}-grams:":
            raise _bad(path, i + 1, f"expected the \\{k}-grams: section")
        first = i + 1
        body = lines[first: first + sizes[k - 1]]
        fields = [line.split() for line in body]
        bad = [j for j, fs in enumerate(fields) if len(fs) not in (k + 1, k + 2)]
        if len(body) < sizes[k - 1] or bad:
            j = bad[0] if bad else len(body)
            raise _bad(path, first + j + 1, f"expected {sizes[k - 1]} {k}-gram lines of "
                       f"'log10p w1 .. w{k} [backoff]'")
        try:
            logp.append(np.array([float(fs[0]) for fs in fields], dtype=np.float64))
            logbo.append(np.array([float(fs[k + 1]) if len(fs) == k + 2 else 0.0
                                   for fs in fields], dtype=np.float64))
        except ValueError as exc:
            raise _bad(path, first, f"{k}-grams: {exc}") from None
        words.append([w for fs in fields for w in fs[1:k + 1]])
        i = first + sizes[k - 1]
    # Vocabulary: the specials first, then the unigrams as listed.
    uni = words[0]
    if char_level:
        uni = [" " if w == SPACE else w for w in uni]
        words = [[" " if w == SPACE else w for w in ws] for ws in words]
    for s in SPECIALS[1:]:
        if s not in uni:
            raise DataError(f"{path}: ARPA file has no {s} unigram")
    tokens = list(SPECIALS) + [w for w in uni if w not in SPECIALS]
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{path}: a unigram is listed twice")
    index = {w: j for j, w in enumerate(tokens)}
    grams = []
    for k in range(1, N + 1):
        ids = np.fromiter(map(index.get, words[k - 1], [-1] * len(words[k - 1])),
                          dtype=np.int64, count=len(words[k - 1]))
        if (ids < 0).any():
            w = words[k - 1][int(np.flatnonzero(ids < 0)[0])]
            raise DataError(f"{path}: {k}-gram uses {w!r}, which is not a unigram")
        grams.append(ids.reshape(-1, k))
        clip = logp[k - 1] <= _LOG0
        logp[k - 1][clip] = -np.inf
        logbo[k - 1][logbo[k - 1] <= _LOG0] = -np.inf
    if "<unk>" not in uni:
        grams[0] = np.concatenate([[[0]], grams[0]])
        logp[0] = np.concatenate([[-np.inf], logp[0]])
        logbo[0] = np.concatenate([[0.0], logbo[0]])
    return tokens, grams, logp, logbo

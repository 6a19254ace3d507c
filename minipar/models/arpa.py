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
lmplz does. log10 0 is written as -99 (the SRILM convention) and read back as 0. The file
starts with a blank line because older KenLM readers demand it.

Tokens may not contain white space, so character-level models write the space character as
``<space>`` (and read it back when told the model is character-level).
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager

import numpy as np

from minipar.data.tokenize import SPECIALS
from minipar.core.errors import DataError

__all__ = ["write_arpa", "read_arpa", "SPACE"]

SPACE = "<space>"
_LOG0 = -99.0
_CHUNK = 1 << 16


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


def _fmt(values: np.ndarray, precision: int) -> list[str]:
    v = np.where(np.isfinite(values), values, _LOG0)
    return list(map(f"{{:.{precision}g}}".format, v.tolist()))


def write_arpa(path, tokens, grams, logp, logbo, bos: int = 1, precision: int = 10,
               char_level: bool = False, progress=None) -> None:
    """Write tables aligned with ``grams`` (lists over orders) as an ARPA file, atomically."""
    names = np.array([SPACE if (char_level and t == " ") else t for t in tokens], dtype=object)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        with _no_gc(), open(tmp, "w", encoding="utf-8", newline="\n") as f:
            _write(f, names, grams, logp, logbo, bos, precision, progress)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write(f, names, grams, logp, logbo, bos, precision, progress):
    N = len(grams)
    f.write("\n\\data\\\n")
    for k in range(1, N + 1):
        f.write(f"ngram {k}={len(grams[k - 1])}\n")
    for k in range(1, N + 1):
        if progress:
            progress(f"writing {k}-grams")
        f.write(f"\n\\{k}-grams:\n")
        rows = grams[k - 1]
        for lo in range(0, len(rows), _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            cols = [names[rows[sl, j]].tolist() for j in range(k)]
            lp = logp[k - 1][sl].copy()
            if k == 1:
                lp[rows[sl, 0] == bos] = 0.0  # placeholder: <s> is never predicted
            fields = [_fmt(lp, precision), list(map(" ".join, zip(*cols)))]
            if k < N:
                fields.append(_fmt(logbo[k - 1][sl], precision))
            f.write("\n".join(map("\t".join, zip(*fields))))
            f.write("\n")
    f.write("\n\\end\\\n")


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

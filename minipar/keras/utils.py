"""Data preparation: ``pad_sequences``, a word ``Tokenizer``, ``set_random_seed``.

Ids follow one convention everywhere (the built-in data set too): 0 is padding, 1 stands
for a word outside the vocabulary, and 2, 3, ... are the words from the most frequent down,
so with ``num_words=N`` every id is below N and ``Embedding(input_dim=N)`` fits.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from minipar.core import backend
from minipar.core.errors import ConfigError

PAD, OOV = 0, 1
_WORD = re.compile(r"[a-z0-9']+")


def pad_sequences(sequences, maxlen: int | None = None, dtype="int32", padding: str = "pre",
                  truncating: str = "pre", value=0) -> np.ndarray:
    """Lists of ids -> one (rows, maxlen) array. ``maxlen`` defaults to the longest row;
    longer rows lose ids at the start (``truncating='pre'``) or end ('post'); shorter ones
    get ``value`` before them (``padding='pre'``, Keras' default) or after ('post')."""
    for name, side in (("padding", padding), ("truncating", truncating)):
        if side not in ("pre", "post"):
            raise ConfigError(f"pad_sequences({name}={side!r}): use 'pre' or 'post'")
    rows = [list(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(r) for r in rows), default=0)
    if maxlen < 0:
        raise ConfigError(f"pad_sequences(maxlen={maxlen!r}): must be >= 0")
    out = np.full((len(rows), maxlen), value, dtype=dtype)
    for i, r in enumerate(rows):
        r = r[-maxlen:] if truncating == "pre" else r[:maxlen]
        if maxlen == 0 or not r:
            continue
        if padding == "pre":
            out[i, maxlen - len(r):] = r
        else:
            out[i, :len(r)] = r
    return out


def words(text: str) -> list[str]:
    """Lower-cased words and numbers (apostrophes kept: "don't")."""
    return _WORD.findall(text.lower())


class Tokenizer:
    """Text -> lists of ids: ``fit_on_texts`` counts words, ``texts_to_sequences`` maps them
    (0 padding, 1 out of vocabulary, 2.. by frequency; ties in alphabetical order)."""

    def __init__(self, num_words: int | None = None):
        if num_words is not None and num_words < 3:
            raise ConfigError(f"Tokenizer(num_words={num_words!r}): needs at least 3 (padding, "
                              f"out of vocabulary, one word)")
        self.num_words = num_words
        self.word_index: dict[str, int] = {}

    def fit_on_texts(self, texts) -> None:
        counts = Counter(w for t in texts for w in words(t))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        self.word_index = {w: i + 2 for i, w in enumerate(ranked)}

    def texts_to_sequences(self, texts) -> list[list[int]]:
        limit = self.num_words or (len(self.word_index) + 2)
        out = []
        for t in texts:
            ids = [self.word_index.get(w, OOV) for w in words(t)]
            out.append([i if i < limit else OOV for i in ids])
        return out


def set_random_seed(seed: int) -> None:
    """Seed the draws of new weights (and everything else minipar draws)."""
    backend.seed(seed)

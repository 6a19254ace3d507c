"""Tokenizers and the vocabulary: text -> a stream of integer ids, and back.

Text is first normalised (``normalize_text``) so that every model sees the same thing:

    NFC Unicode, optional lower-casing, one sentence per line, every run of whitespace
    (Python's ``str.split`` notion, so tabs and no-break spaces too) -> one space,
    leading/trailing spaces removed, blank lines dropped.

Two tokenizers cut a line into tokens: ``char`` (every code point, the space included) and
``word`` (split on the single spaces left by normalisation). A ``Vocab`` maps tokens to ids:

    id 0 = <unk>   every token not in the vocabulary (and a literal "<unk>"/"<s>"/"</s>" word)
    id 1 = <s>     start of a sentence: only ever context, never predicted
    id 2 = </s>    end of a sentence: the line break; predicted and counted as a token
    id 3...        the kept tokens, most frequent first, ties in code-point order

A text becomes one id stream ``w1 ... wm </s> w1 ... </s> ...``: each line's tokens followed
by ``</s>``. ``<s>`` is never stored in the stream; models that need it (the N-gram model)
insert it after every ``</s>``. Encoding and decoding are vectorised: characters through a
sorted code-point table and ``np.searchsorted``, words through one C-level ``map`` over a
dict, never a Python loop per token.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from itertools import repeat

import numpy as np

from minipar.core.errors import ConfigError, DataError

__all__ = ["UNK", "BOS", "EOS", "SPECIALS", "KINDS", "normalize_text", "Vocab", "join_words",
           "split_joined"]

UNK, BOS, EOS = 0, 1, 2
SPECIALS = ("<unk>", "<s>", "</s>")
KINDS = ("char", "word")
_FORMAT = "minipar-vocab-1"


def normalize_text(text: str, lower: bool = False) -> str:
    """The canonical form every tokenizer reads: lines joined by "\\n", each line ending in "\\n".

    Lower-casing comes before NFC because ``str.lower`` may emit decomposed sequences.
    ``str.splitlines`` also breaks on \\x1c-\\x1e, \\x85, \\u2028 and \\u2029, and ``str.split``
    treats those as spaces, so after this function the only whitespace left is " " and "\\n".
    """
    if lower:
        text = text.lower()
    text = unicodedata.normalize("NFC", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    kept = [line for line in lines if line]
    return "\n".join(kept) + "\n" if kept else ""


_BLOCK = 1 << 14  # tokens encoded or decoded at once


def join_words(words) -> bytes:
    """The UTF-8 bytes of ``words`` (no space in them), each followed by b" ".

    A block at a time: one str of every word would take 4 bytes a character as soon as one
    word is outside Latin-1 (31 MB for a 447,000-word vocabulary of source code)."""
    return b"".join([(" ".join(words[i:i + _BLOCK]) + " ").encode("utf-8")
                     for i in range(0, len(words), _BLOCK)])


def split_joined(data) -> list[str]:
    """``join_words``' inverse, a block of words at a time (bytes or a uint8 array)."""
    a = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    ends = np.flatnonzero(a == ord(" "))
    out, lo = [], 0
    for hi in (ends[_BLOCK - 1::_BLOCK] + 1).tolist() + [len(a)]:
        if hi > lo:
            out += a[lo:hi - 1].tobytes().decode("utf-8").split(" ")
        lo = hi
    return out


def _codepoints(text: str) -> np.ndarray:
    """Code points of a string as a uint32 array (UTF-32 is a fixed-width view of the text)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _words(text: str) -> list[str]:
    """Words of normalised text with "\\n" kept as its own item (it becomes </s>)."""
    items = text.replace("\n", " \n ").split(" ")
    return [w for w in items if w]


class Vocab:
    """Token <-> id map with the tokenizer settings it was built with (saved together).

    ``tokens[i]`` is the string of id ``i``; ``kind`` is ``"char"`` or ``"word"``; ``lower``
    says whether text is lower-cased before tokenizing. Build with ``Vocab.build``.
    """

    unk_id, bos_id, eos_id = UNK, BOS, EOS

    def __init__(self, tokens, kind: str = "word", lower: bool = False, distinct: bool = False):
        tokens = list(tokens)
        if tuple(tokens[:3]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {tokens[:3]}")
        if kind not in KINDS:
            raise ConfigError(f"unknown token kind {kind!r}: use 'char' or 'word'")
        self._tokens, self._joined, self._n = tokens, None, len(tokens)
        self.kind = kind
        self.lower = bool(lower)
        self._index, self._words = None, None
        if not distinct and len(self.index) != len(tokens):  # distinct: known by the caller
            raise ValueError("vocabulary tokens must be distinct")
        if kind == "char":
            singles = [(ord(t), i) for i, t in enumerate(tokens) if i >= 3 and len(t) == 1]
            singles.append((ord("\n"), EOS))
            singles.sort()
            self._cp = np.array([c for c, _ in singles], dtype=np.uint32)
            self._cp_ids = np.array([i for _, i in singles], dtype=np.int64)

    @classmethod
    def from_joined(cls, data: bytes, lower: bool = False) -> "Vocab":
        """A word vocabulary from the tokens after the specials as ``join_words`` bytes,
        decoded into strs only when ``tokens`` is first read: a rank that only writes its
        part of an ARPA file needs the bytes alone (``joined``)."""
        v = cls(SPECIALS, "word", lower)
        data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        v._tokens, v._joined, v._index = None, data, None
        v._n = len(SPECIALS) + data.count(b" ")
        return v

    @property
    def tokens(self) -> list:
        """``tokens[i]``: the string of id i."""
        if self._tokens is None:
            self._tokens = list(SPECIALS) + split_joined(self._joined)
        return self._tokens

    def joined(self, specials: bool = True) -> bytes:
        """Every token (``specials=False``: those after the specials) as ``join_words``
        bytes."""
        if self._joined is not None:
            return join_words(SPECIALS) + self._joined if specials else self._joined
        return join_words(self.tokens if specials else self.tokens[len(SPECIALS):])

    @property
    def index(self) -> dict:
        """token -> id, built on first use (a dict of 10^5 words takes a noticeable time)."""
        if self._index is None:
            self._index = dict(zip(self.tokens, range(len(self.tokens))))
        return self._index

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other) -> bool:
        return (isinstance(other, Vocab) and self.tokens == other.tokens
                and self.kind == other.kind and self.lower == other.lower)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, kind={self.kind!r}, lower={self.lower})"

    # ------------------------------------------------------------------ building
    @staticmethod
    def count(text: str, kind: str) -> Counter:
        """Token counts of normalised text (line breaks and special strings not counted)."""
        if kind == "char":
            cps, n = np.unique(_codepoints(text), return_counts=True)
            counts = Counter({chr(int(c)): int(k) for c, k in zip(cps, n)})
            counts.pop("\n", None)
        elif kind == "word":
            counts = Counter(_words(text))
            counts.pop("\n", None)
            for s in SPECIALS:
                counts.pop(s, None)
        else:
            raise ConfigError(f"unknown token kind {kind!r}: use 'char' or 'word'")
        return counts

    @classmethod
    def build(cls, text: str, kind: str = "word", lower: bool = False, min_count: int = 1,
              max_size: int | None = None, name: str = "text") -> "Vocab":
        """Vocabulary of normalised ``text``: tokens seen at least ``min_count`` times, the
        ``max_size - 3`` most frequent if ``max_size`` is given (the 3 specials included in
        the size). Order: count descending, ties by code point, so the ids are deterministic.
        Raises DataError (naming ``name``) when nothing is left."""
        if min_count < 1:
            raise ConfigError(f"--min-count must be at least 1, got {min_count}")
        if max_size is not None and max_size < 4:
            raise ConfigError(f"--max-vocab must be at least 4 (3 specials + 1), got {max_size}")
        counts = cls.count(text, kind)
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - 3]
        return cls.build_from(list(SPECIALS) + kept, kind, lower, nothing=not kept, name=name,
                              min_count=min_count, empty=not counts)

    @classmethod
    def build_from(cls, tokens, kind, lower, nothing, name, min_count, empty) -> "Vocab":
        """The vocabulary of distinct ``tokens``, or the DataError of ``build`` when
        ``nothing`` is kept."""
        if nothing:
            why = "it is empty" if empty else f"no token occurs {min_count} times or more"
            raise DataError(f"{name}: the {kind} vocabulary has nothing in it ({why})")
        return cls(tokens, kind=kind, lower=lower, distinct=True)

    # ------------------------------------------------------------------ encoding
    def normalize(self, text: str) -> str:
        return normalize_text(text, lower=self.lower)

    def encode(self, text: str, normalized: bool = False) -> np.ndarray:
        """Id stream of a text: every line's tokens followed by </s> (int64)."""
        if not normalized:
            text = self.normalize(text)
        if self.kind == "char":
            cps = _codepoints(text)
            if len(self._cp) == 0:
                return np.full(len(cps), UNK, dtype=np.int64)
            pos = np.minimum(np.searchsorted(self._cp, cps), len(self._cp) - 1)
            return np.where(self._cp[pos] == cps, self._cp_ids[pos], UNK).astype(np.int64)
        if self._words is None:
            # specials are left out, so that literal "<s>" text is read as <unk>
            self._words = dict(self.index)
            for s in SPECIALS:
                del self._words[s]
            self._words["\n"] = EOS
        items = _words(text)
        return np.fromiter(map(self._words.get, items, repeat(UNK)), dtype=np.int64,
                           count=len(items))

    def encode_line(self, line: str) -> np.ndarray:
        """Ids of one line without the closing </s> (the classifier's input)."""
        ids = self.encode(line)
        return ids[ids != EOS]

    def decode(self, ids) -> str:
        """Text of an id stream: </s> -> line break, <s> dropped, <unk> -> "<unk>"."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        table = np.array(self.tokens, dtype=object)
        table[BOS] = ""
        table[EOS] = "\n"
        ids = ids[ids != BOS]
        if self.kind == "char":
            return "".join(table[ids].tolist())
        cuts = np.flatnonzero(ids == EOS) + 1
        parts = np.split(ids, cuts)
        lines = [" ".join(table[p[p != EOS]].tolist()) for p in parts]
        ends = ["\n"] * len(cuts) + [""]
        return "".join(line + end for line, end in zip(lines, ends))

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "kind": self.kind, "lower": self.lower,
                "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict, name: str = "vocabulary") -> "Vocab":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise DataError(f"{name}: not a minipar vocabulary ({_FORMAT})")
        try:
            return cls(d["tokens"], kind=d["kind"], lower=d["lower"])
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{name}: broken vocabulary: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path) -> None:
        """Write the vocabulary as JSON (atomically: a temporary file, then a rename)."""
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "Vocab":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary file not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a vocabulary file ({exc})") from None
        return cls.from_dict(d, name=str(path))

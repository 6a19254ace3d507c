"""Corpora: the built-in English text, any UTF-8 file, and the deterministic split.

Built-in corpus (no download): the prose of the Python documentation that ships with every
CPython as ``pydoc_data.topics`` (the text ``help("assert")`` prints), topics in sorted
order. Its size depends on the Python version (3.11: about 10,000 lines, 65,000 words,
450,000 characters after normalisation); for one Python it is always the same text.
Heading underlines ("*****", "=====") are dropped, then the text is normalised like any file
(``tokenize.normalize_text``: one sentence per line, single spaces, no blank lines).

Split (when no ``--valid`` file is given): lines are cut into contiguous blocks of ``b``
lines, ``b = max(1, min(10, n_lines // 200))``; in every run of 20 blocks, block 18 goes to
validation, block 19 to test, the other 18 to training (90 / 5 / 5). Contiguous blocks keep
lines together for truncated BPTT; spreading them over the text keeps every topic in every
split. The vocabulary is built from the training split only, so validation and test tokens
it does not know are read as <unk>.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from minipar.core.errors import ConfigError, DataError
from minipar.data.fast_text import normalize_bytes
from minipar.data.files import check_file
from minipar.data.tokenize import Vocab, normalize_text
from minipar.data.word_keys import word_vocab_and_ids

__all__ = ["BUILTIN", "Corpus", "builtin_text", "read_text", "line_slots", "split_lines",
           "load_corpus", "load_text_lines"]

BUILTIN = "builtin"
_UNDERLINE = re.compile(r"^\s*([*=\-^~#+])\1{2,}\s*$")
_MIN_SPLIT_LINES = 20


def builtin_text() -> str:
    """The raw built-in corpus: every ``pydoc_data.topics`` entry, topics in sorted order."""
    from pydoc_data.topics import topics

    parts = []
    for key in sorted(topics):
        lines = topics[key].splitlines()
        parts.append("\n".join(line for line in lines if not _UNDERLINE.match(line)))
    return "\n".join(parts)


def read_text(path, what: str = "data") -> str:
    """Read a UTF-8 text file; every failure is one DataError naming the file."""
    path = os.fspath(path)
    check_file(path, what)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (bad byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}, line {line})") from None
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the text
        text = text[1:]
    if not text.strip():
        raise DataError(f"{path}: {what} file is empty")
    return text


def load_text_lines(source, lower: bool = False, what: str = "data") -> tuple[list[str], str]:
    """Normalised lines of a file (or of the built-in corpus for ``None``/"builtin"), and the
    name to use in messages."""
    if source is None or source == BUILTIN:
        return normalize_text(builtin_text(), lower).splitlines(), "built-in corpus"
    name = os.fspath(source)
    # normalize_text's lines, from array operations on the bytes (fast_text.py)
    lines = normalize_bytes(read_text(name, what).encode("utf-8"), lower).decode(
        "utf-8").splitlines()
    if not lines:
        raise DataError(f"{name}: {what} file has no text (only whitespace)")
    return lines, name


def line_slots(n: int, first: int = 0, count: int | None = None, name: str = "data"):
    """The split's slot of lines first .. first+count-1 of n: 0-17 train, 18 valid, 19 test
    (blocks of b = max(1, min(10, n // 200)) lines; see the module docstring)."""
    if n < _MIN_SPLIT_LINES:
        raise DataError(f"{name}: {n} lines are too few to split into train/valid/test (need "
                        f"{_MIN_SPLIT_LINES}); give a separate --valid file")
    b = max(1, min(10, n // 200))
    return ((first + np.arange(n if count is None else count)) // b) % 20


def split_lines(lines: list[str], name: str = "data"):
    """Deterministic 90/5/5 split by contiguous blocks of lines (see the module docstring)."""
    slot = line_slots(len(lines), name=name)
    pick = {"train": slot < 18, "valid": slot == 18, "test": slot == 19}
    return tuple([lines[i] for i in np.flatnonzero(pick[k])] for k in ("train", "valid", "test"))


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


@dataclass
class Corpus:
    """Token-id streams (int64; each line's tokens then </s>) and their vocabulary.

    ``test`` is None when separate ``valid`` data was given without a ``test`` file.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    vocab: Vocab
    names: dict = field(default_factory=dict)

    def __iter__(self):  # train, valid, test, vocab = load_corpus(...)
        return iter((self.train, self.valid, self.test, self.vocab))

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in
                          (("train", self.train), ("valid", self.valid), ("test", self.test))
                          if v is not None)
        return (f"{self.names.get('train', 'data')}: {self.vocab.kind} tokens, vocabulary "
                f"{len(self.vocab):,}; {sizes}")


def _cap(lines: list[str], max_chars: int | None) -> list[str]:
    """The first whole lines holding at most ``max_chars`` characters (line breaks counted)."""
    if max_chars is None:
        return lines
    ends = np.cumsum([len(line) + 1 for line in lines])
    return lines[: int(np.searchsorted(ends, max_chars, side="right"))]


def load_corpus(data=None, valid=None, test=None, tokens: str | None = None, lower: bool = False,
                min_count: int = 1, max_vocab: int | None = None,
                max_chars: int | None = None, vocab: Vocab | None = None) -> Corpus:
    """Train / valid / test id streams and the vocabulary, ready for a language model.

    data:      path of a UTF-8 text file, or None / "builtin" for the built-in corpus.
    valid:     optional validation file; then ``data`` is all training text (no split) and
               ``test`` is the optional ``test`` file (None if not given).
    tokens:    "char" (the default) or "word"; ``lower`` lower-cases first.
    min_count, max_vocab: vocabulary cut-offs (rarer tokens become <unk>).
    max_chars: use only the first lines of ``data`` up to this many characters (a quick
               run on the built-in corpus); applied before the split.
    vocab:     an existing vocabulary (e.g. from a checkpoint) instead of building one.
    """
    if tokens is None:
        tokens = vocab.kind if vocab is not None else "char"
    if tokens not in ("char", "word"):
        raise ConfigError(f"--tokens must be 'char' or 'word', got {tokens!r}")
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"--max-chars must be positive, got {max_chars}")
    lower = vocab.lower if vocab is not None else lower
    lines, name = load_text_lines(data, lower)
    lines = _cap(lines, max_chars)
    names = {"train": name}
    if valid is None:
        if test is not None:
            raise ConfigError("a --test file needs a --valid file too")
        tr, va, te = split_lines(lines, name)
        names.update(valid=f"{name} (valid split)", test=f"{name} (test split)")
    else:
        if not lines:
            raise DataError(f"{name}: --max-chars {max_chars} leaves no whole line")
        tr = lines
        va, names["valid"] = load_text_lines(valid, lower, what="validation")
        te = None
        if test is not None:
            te, names["test"] = load_text_lines(test, lower, what="test")
    train_text = _join(tr)
    train_ids = None
    if vocab is None and tokens == "word":  # the same vocabulary and ids, from array keys
        vocab, train_ids = word_vocab_and_ids(train_text, lower, min_count, max_vocab, name)
    elif vocab is None:
        vocab = Vocab.build(train_text, tokens, lower, min_count, max_vocab, name=name)
    elif vocab.kind != tokens:
        raise ConfigError(f"the vocabulary is {vocab.kind}-level but --tokens is {tokens}")
    if train_ids is None:
        train_ids = vocab.encode(train_text, normalized=True)
    va, te = (vocab.encode(_join(x), normalized=True) if x is not None else None
              for x in (va, te))
    return Corpus(train_ids, va, te, vocab, names)

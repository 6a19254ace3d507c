"""``normalize_text`` on UTF-8 bytes with array operations: the same bytes, faster, less memory.

``normalize_text`` splits a str into lines and every line into words: a Python object per
line and per word, and for text with one character past U+FFFF, 4 bytes per character.
Here the work is done on the bytes:

0. The bytes are cut into blocks of whole lines (a few MB), normalised one at a time.
1. Non-ASCII text is decoded, lower-cased if asked, put in NFC, and every non-ASCII white
   space is replaced by "\\n" (the line breaks U+0085, U+2028, U+2029) or " " (the others);
   then encoded again. ASCII text skips all of that (NFC and lower-casing are the ASCII
   ones, ``bytes.lower``).
2. Every byte gets a class: a line break (\\n \\r \\v \\f \\x1c \\x1d \\x1e, as
   ``str.splitlines``), a space (space, \\t, \\x1f: white space to ``str.split`` that does not
   break lines), or text. Words are the runs of text bytes.
3. The output is every word followed by "\\n" when a line break lies between it and the
   next word (or it is the last word), else by " ": exactly the lines of ``normalize_text``,
   blank lines dropped, each ending in "\\n".
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from minipar.core.errors import DataError
from minipar.core.ragged import ragged_gather
from minipar.data.files import check_file

__all__ = ["normalize_bytes", "check_utf8", "read_normalized", "blocks"]

_TEXT, _SPACE, _BREAK = 0, 1, 2
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[[0x09, 0x20, 0x1F]] = _SPACE
_CLASS[[0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E]] = _BREAK
# the non-ASCII white space of str.split, and those of it that str.splitlines breaks at
_UNI_BREAK = re.compile("[\u0085\u2028\u2029]")
_UNI_SPACE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")


_BLOCK = 1 << 20  # bytes normalised at a time (whole lines): small temporaries


def blocks(raw: bytes, size: int = _BLOCK):
    """``raw`` cut into pieces of whole lines, each about ``size`` bytes or one line."""
    i = 0
    while i < len(raw):
        j = raw.find(b"\n", min(i + size, len(raw)) - 1)
        j = len(raw) if j < 0 else j + 1
        yield raw[i:j]
        i = j


def normalize_bytes(raw: bytes, lower: bool = False) -> bytes:
    """``normalize_text(raw.decode("utf-8"), lower).encode("utf-8")``; ``raw`` must be valid
    UTF-8 (the caller checks it, to name the bad line). Lines are independent (NFC and
    lower-casing do not reach across a line break), so it works a block of lines at a time."""
    return b"".join(_normalize_block(block, lower) for block in blocks(raw))


def _normalize_block(raw: bytes, lower: bool) -> bytes:
    if raw.isascii():
        data = raw.lower() if lower else raw
    else:
        text = raw.decode("utf-8")
        if lower:
            text = text.lower()  # before NFC: lower() may give decomposed sequences
        text = unicodedata.normalize("NFC", text)
        text = _UNI_SPACE.sub(" ", _UNI_BREAK.sub("\n", text))
        data = text.encode("utf-8")
    b = np.frombuffer(data, dtype=np.uint8)
    if len(b) == 0:
        return b""
    cls = _CLASS[b]
    change = np.flatnonzero((cls[1:] == _TEXT) != (cls[:-1] == _TEXT)) + 1
    runs = np.concatenate([[0], change])  # runs alternate: text, white space, text...
    if cls[0] != _TEXT:
        runs = runs[1:]  # leading white space is dropped
    if len(runs) == 0:
        return b""
    worst = np.maximum.reduceat(cls, runs)  # per run: 0 text, 1 spaces, 2 a line break
    start, gap = runs[0::2], worst[1::2]
    end = np.append(runs[1::2], len(b))[:len(start)]
    sep = np.full(len(start), len(b) + 1, dtype=np.int64)  # "\n" after the last word
    sep[:len(gap)] = np.where(gap[:len(start)] == _BREAK, len(b) + 1, len(b))
    sep[-1] = len(b) + 1  # white space after the last word: the line ends anyway
    src = np.concatenate([b, np.frombuffer(b" \n", dtype=np.uint8)])
    pieces = np.stack([start, sep], axis=1).ravel()
    lengths = np.stack([end - start, np.ones(len(start), dtype=np.int64)], axis=1).ravel()
    return ragged_gather(src, pieces, lengths).tobytes()


def check_utf8(raw: bytes, name: str, offset: int = 0, lines_before: int = 0) -> str | None:
    """None for valid UTF-8, else the message naming the bad byte, its offset and line.
    Checked a block of lines at a time ("\n" is never inside a UTF-8 sequence)."""
    at = 0
    for block in blocks(raw):
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = lines_before + raw[:at + exc.start].count(b"\n") + 1
                return (f"{name}: not UTF-8 text (bad byte 0x{block[exc.start]:02x} at offset "
                        f"{offset + at + exc.start}, line {line})")
        at += len(block)
    return None


def read_normalized(path: str, lower: bool = False, what: str = "data") -> bytes:
    """The normalised UTF-8 bytes of a text file (``read_text`` + ``normalize_text``);
    every failure is one DataError naming the file."""
    check_file(path, what)
    with open(path, "rb") as f:
        raw = f.read()
    bad = check_utf8(raw, path)
    if bad:
        raise DataError(bad)
    out = normalize_bytes(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw, lower)
    if not out:
        raise DataError(f"{path}: {what} file has no text (only whitespace)")
    return out

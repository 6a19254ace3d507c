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

Text that is already normalised (a corpus written one sentence a line, as most are) comes
back as it is, after checks that cost a fraction of steps 1-3: NFC by Python's quick check
(``unicodedata.is_normalized``), no non-ASCII white space (its UTF-8 lead bytes C2, E1,
E2, E3 looked at), and in the bytes every separator a single " " or "\\n" between two
words, the last byte "\\n".
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


_SP, _LF = 0x20, 0x0A
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
        data = _unicode_steps(raw, lower)
    b = np.frombuffer(data, dtype=np.uint8)
    if len(b) == 0:
        return b""
    cls = _CLASS[b]
    if _already_normal(b, cls):
        return data
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


def _unicode_steps(raw: bytes, lower: bool) -> bytes:
    """Step 1 for non-ASCII bytes; NFC and the white-space swap only where they change
    something."""
    text = raw.decode("utf-8")
    if lower:
        text = text.lower()  # before NFC: lower() may give decomposed sequences
    changed = lower
    if not unicodedata.is_normalized("NFC", text):
        text, changed = unicodedata.normalize("NFC", text), True
    data = text.encode("utf-8") if changed else raw
    if _has_unicode_space(np.frombuffer(data, dtype=np.uint8)):
        data = _UNI_SPACE.sub(" ", _UNI_BREAK.sub("\n", text)).encode("utf-8")
    return data


# The non-ASCII white space of _UNI_BREAK and _UNI_SPACE as UTF-8 byte codes: all of them
# start with C2, E1, E2 or E3 (their lead bytes), and are 2 or 3 bytes long.
_UNI_WHITE = [c.encode("utf-8") for c in map(chr, range(0x80, 0x3001))
              if _UNI_BREAK.match(c) or _UNI_SPACE.match(c)]
_LEAD = np.zeros(256, dtype=bool)
_LEAD[[w[0] for w in _UNI_WHITE]] = True
_WS2 = np.array([int.from_bytes(w, "big") for w in _UNI_WHITE if len(w) == 2], np.uint32)
_WS3 = np.array([int.from_bytes(w, "big") for w in _UNI_WHITE if len(w) == 3], np.uint32)


def _has_unicode_space(b: np.ndarray) -> bool:
    """Whether the UTF-8 bytes ``b`` hold any of _UNI_WHITE."""
    at = np.flatnonzero(_LEAD[b])
    if len(at) == 0:
        return False
    pad = np.concatenate([b, np.zeros(2, dtype=np.uint8)])
    two = (pad[at].astype(np.uint32) << 8) | pad[at + 1]
    three = (two << 8) | pad[at + 2]
    return bool(np.isin(two, _WS2).any() or np.isin(three, _WS3).any())


def _already_normal(b: np.ndarray, cls: np.ndarray) -> bool:
    """Whether step 3 would give back ``b`` itself: every separator byte is " " or "\\n",
    none is next to another or first, and the last byte is "\\n"."""
    if b[-1] != _LF or cls[0] != _TEXT:
        return False
    sep = cls != _TEXT
    n = int(np.count_nonzero(sep))
    if n != int(np.count_nonzero(b == _SP)) + int(np.count_nonzero(b == _LF)):
        return False
    return not (sep[1:] & sep[:-1]).any()


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

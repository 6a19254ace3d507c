"""Words of normalised text as 64-bit keys, found with array operations on its UTF-8 bytes.

After ``normalize_text`` a text is lines ended by "\\n" whose words are separated by single
spaces, so in its bytes b a word is a maximal run of bytes other than " " and "\\n". Each
word w of L bytes gets a key:

    L <= 7   the bytes big-endian in the top 7 bytes, L in the lowest byte: exact, and the
             order of keys is the order of the words' bytes
    L >= 8   a 56-bit hash in the top 7 bytes, 0 in the lowest byte: over the word's
             8-byte chunks c_j, x = (h xor c_j) * P mod 2^64, h = x xor (x >> 32); then
             MurmurHash3's finaliser

Distinct keys are found with one ``np.unique``. Long keys could collide, so every long word
is compared byte for byte with the first word of its key (``check_long``); a collision is
reported, and the caller falls back to the dictionary path. The keys depend on the bytes
only, so every rank and every run computes the same ones: distinct words can be merged
across ranks as arrays (training/ngram_read.py).
"""

from __future__ import annotations

import numpy as np

from minipar.data.tokenize import EOS, SPECIALS, UNK, Vocab
from minipar.core.ragged import ragged_gather

__all__ = ["Words", "split_words", "vocab_order", "word_vocab_and_ids", "vocab_from",
           "with_eos"]

_SP, _LF = 32, 10
_IS_SEP = np.zeros(256, dtype=bool)
_IS_SEP[[_SP, _LF]] = True
_P = np.uint64(0x100000001B3)


class Words:
    """The words of a normalised byte buffer: where they are, their keys, the lines.

    ``start``, ``length``: byte spans; ``line_words[i]``: words on line i; ``keys``,
    ``distinct`` (sorted unique keys), ``inverse`` (word -> index in distinct), ``counts``.
    ``first[j]``: the first word with key distinct[j], whose bytes stand for it."""

    def __init__(self, buf: np.ndarray):
        if len(buf) and buf[-1] != _LF:  # the last line closed, as normalize_text does
            buf = np.append(buf, np.uint8(_LF))
        self.buf = buf
        self.start, self.length, self.line_words = _spans(buf)
        self.keys = _keys(buf, self.start, self.length)
        self.distinct, first, self.inverse, self.counts = np.unique(
            self.keys, return_index=True, return_inverse=True, return_counts=True)
        self.first = first
        self.collision = not check_long(buf, self.start, self.length, self.keys,
                                        first[self.inverse])

    def joined(self) -> bytes:
        """The distinct words' UTF-8 bytes in key order, each followed by one b" "."""
        return join_spans(self.buf, self.start[self.first], self.length[self.first])


def join_spans(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> bytes:
    """The words at ``start``/``length`` in ``buf`` (each followed there by one separator
    byte) as ``join_words`` bytes: each word, then b" "."""
    if len(start) == 0:
        return b""
    n = length + 1
    joined = ragged_gather(buf, start, n)  # each word + its separator,
    joined[np.cumsum(n) - 1] = _SP  # made a space
    return joined.tobytes()


def split_words(text: str | bytes) -> Words:
    """The words of normalised text (str, or its UTF-8 bytes)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return Words(np.frombuffer(data, dtype=np.uint8))


def _spans(buf: np.ndarray):
    # normalised text: every word ends at the next separator, and starts after the last one
    sep = np.flatnonzero(_IS_SEP[buf])
    start = np.concatenate([[0], sep[:-1] + 1]).astype(np.int64)
    lf = np.flatnonzero(buf[sep] == _LF)  # word index of each line's last word
    line_words = np.diff(np.concatenate([[-1], lf]))
    return start, (sep - start).astype(np.int64), line_words


def _chunks(buf: np.ndarray):
    """A view whose element i is the big-endian 64-bit word of bytes i .. i+7 (zero-padded)."""
    pad = np.concatenate([buf, np.zeros(8, dtype=np.uint8)])
    return np.ndarray((len(buf) + 1,), dtype=">u8", buffer=pad, strides=(1,))


_KEEP = np.array([(2**64 - 1) ^ ((1 << 8 * (8 - n)) - 1) for n in range(9)], dtype=np.uint64)


def _masked(chunk: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Keep the first n (1..8 or more) bytes of big-endian 64-bit words, zero the rest."""
    return chunk.astype(np.uint64) & _KEEP[np.minimum(n, 8)]


def _keys(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    view = _chunks(buf)
    keys = _masked(view[start], length) | np.minimum(length, 7).astype(np.uint64)
    long = np.flatnonzero(length > 7)
    if len(long):
        by_len = long[np.argsort(-length[long], kind="stable")]  # active words: a prefix
        s, n = start[by_len], length[by_len]
        h = np.zeros(len(by_len), dtype=np.uint64)
        for j, active in _rounds(n):
            x = (h[:active] ^ _masked(view[s[:active] + 8 * j], n[:active] - 8 * j)) * _P
            h[:active] = x ^ (x >> np.uint64(32))  # high bits down, or they never mix
        h ^= h >> np.uint64(33)  # MurmurHash3's finaliser spreads the bits
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        keys[by_len] = h & ~np.uint64(0xFF)
    return keys


def _rounds(n_desc: np.ndarray):
    """(j, words with more than 8j bytes) for the 8-byte rounds of lengths sorted descending."""
    rounds = (int(n_desc[0]) + 7) // 8
    active = np.searchsorted(-n_desc, -8 * np.arange(rounds), side="left")
    return zip(range(rounds), active.tolist())


def check_long(buf, start, length, keys, rep) -> bool:
    """True when every long word has the bytes of the word ``rep`` that stands for its key."""
    long = np.flatnonzero((keys & np.uint64(0xFF)) == 0)
    long = long[rep[long] != long]
    if len(long) == 0:
        return True
    if not np.array_equal(length[long], length[rep[long]]):
        return False
    long = long[np.argsort(-length[long], kind="stable")]
    view, n = _chunks(buf), length[long]
    a, b = start[long], start[rep[long]]
    for j, active in _rounds(n):
        if not np.array_equal(view[a[:active] + 8 * j], view[b[:active] + 8 * j]):
            left = n[:active] - 8 * j  # the bytes past a word's end may differ
            if not np.array_equal(_masked(view[a[:active] + 8 * j], left),
                                  _masked(view[b[:active] + 8 * j], left)):
                return False
    return True


def _chunk_at(view, size: int, start, length, j: int):
    """Bytes 8j .. 8j+7 of each word as a big-endian integer, zero past the word's end."""
    return _masked(view[np.minimum(start + 8 * j, size)], np.clip(length - 8 * j, 0, 8))


def vocab_order(buf: np.ndarray, start: np.ndarray, length: np.ndarray,
                counts: np.ndarray) -> np.ndarray:
    """Indices of the words (UTF-8 bytes at ``start``/``length`` in ``buf``) by count
    descending, ties in code-point order (Vocab's order), with no str made.

    UTF-8 bytes sort as their code points do. Words are compared 8 bytes at a time
    (big-endian, zero past a word's end), and only the words still tied after a chunk are
    compared on the next one; words tied to their last byte are in order of length (a
    word before the longer words it begins)."""
    n = len(start)
    view = _chunks(buf)
    c = _chunk_at(view, len(buf), start, length, 0)
    order = np.lexsort((c, -counts))
    c, cnt = c[order], counts[order]
    tie = (cnt[1:] == cnt[:-1]) & (c[1:] == c[:-1])  # tie[i]: order[i], order[i+1]
    del c, cnt
    j = 0
    while tie.any():
        j += 1
        pos = np.flatnonzero(np.concatenate([tie, [False]]) | np.concatenate([[False], tie]))
        group = np.cumsum(~np.concatenate([[False], tie]))[pos]  # runs of tied neighbours
        sub = order[pos]
        last = bool((length[sub] <= 8 * j).all())  # no tied word has bytes left: by length
        key = length[sub] if last else _chunk_at(view, len(buf), start[sub], length[sub], j)
        perm = np.lexsort((key, group))
        order[pos] = sub[perm]
        if last:
            break
        key, group = key[perm], group[perm]
        tie = np.zeros(max(n - 1, 0), dtype=bool)  # a group's positions are contiguous
        tie[pos[:-1][(group[1:] == group[:-1]) & (key[1:] == key[:-1])]] = True
    return order


def word_vocab_and_ids(text: str | bytes, lower: bool = False, min_count: int = 1,
                       max_size: int | None = None, name: str = "text"):
    """``Vocab.build(text, "word", ...)`` and ``vocab.encode(text)`` of normalised text (str
    or UTF-8 bytes) in one pass over its bytes; the same vocabulary and ids, faster (falls
    back on a collision)."""
    words = split_words(text)
    if words.collision:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        vocab = Vocab.build(text, "word", lower, min_count, max_size, name=name)
        return vocab, vocab.encode(text, normalized=True)
    vocab, remap = vocab_from(words.buf, words.start[words.first], words.length[words.first],
                              words.distinct, words.counts, lower, min_count, max_size, name)
    return vocab, with_eos(remap[words.inverse], words.line_words, EOS)


def vocab_from(buf: np.ndarray, start: np.ndarray, length: np.ndarray, keys: np.ndarray,
               counts: np.ndarray, lower: bool, min_count: int, max_size: int | None,
               name: str):
    """The ``Vocab`` of distinct words (their bytes at ``start``/``length`` in ``buf``, each
    followed there by one separator byte; their sorted keys and counts), as ``Vocab.build``
    makes it, and ``remap``: word j -> its id (<unk> when cut off). The vocabulary holds the
    kept words as bytes (``Vocab.from_joined``): no str is made until one is asked for."""
    counts = counts.copy()
    for s in SPECIALS:  # literal "<s>" text is a word like any other: <unk>
        b = s.encode()
        j = int(np.searchsorted(keys, split_words(s).keys[0]))
        if j < len(keys) and length[j] == len(b) and buf[start[j]:start[j] + len(b)].tobytes() == b:
            counts[j] = 0
    order = vocab_order(buf, start, length, counts)
    order = order[counts[order] >= max(min_count, 1)]
    if max_size is not None:
        order = order[:max_size - 3]
    if len(order) == 0:  # Vocab.build's error
        Vocab.build_from([], "word", lower, nothing=True, name=name, min_count=min_count,
                         empty=len(keys) == 0)
    vocab = Vocab.from_joined(join_spans(buf, start[order], length[order]), lower)
    remap = np.full(len(keys), UNK, dtype=np.int64)
    remap[order] = np.arange(3, 3 + len(order))
    return vocab, remap


def with_eos(word_ids: np.ndarray, line_words: np.ndarray, eos: int) -> np.ndarray:
    """Each line's word ids followed by ``eos``."""
    out = np.full(len(word_ids) + len(line_words), eos, dtype=np.int64)
    words = np.ones(len(out), dtype=bool)  # a mask: 1 byte a token, not 16 of positions
    words[np.cumsum(np.asarray(line_words) + 1) - 1] = False  # each line's </s>
    out[words] = word_ids
    return out

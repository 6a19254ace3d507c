"""Reading a text file and building its word vocabulary on P ranks, no rank reading it all.

Byte ranges. Rank r takes the bytes [r S/P, (r+1) S/P) of the S-byte file, with both ends
moved forward to the next line start (a cut at offset o moves to just after the first
"\\n" at or after o - 1), so every line is read by exactly one rank and no sentence is cut.
A rank whose range holds no line start gets nothing (more ranks than lines, one huge line).

Vocabulary. Each rank normalises its lines and finds its distinct words as 64-bit keys
(``word_keys``). The (keys, counts, words' UTF-8 bytes) of every rank are gathered on rank
0 as arrays (``gatherv``), merged (counts added per key; long words compared as bytes with
the word that stands for their key) and ordered as ``Vocab.build`` orders them (count
descending, ties in code-point order, found on the bytes); the result goes back as arrays
(``bcast``), and every rank keeps the words as bytes (``Vocab.from_joined``).
That order depends on the total counts only, so the vocabulary, and every id, is the same
for any number of ranks.
"""

from __future__ import annotations

import os

import numpy as np

from minipar.core.errors import DataError
from minipar.core.ragged import ragged_gather
from minipar.data.corpus import Corpus, line_slots
from minipar.data.files import check_file
from minipar.data.fast_text import check_utf8, normalize_bytes
from minipar.data.tokenize import EOS, Vocab
from minipar.data.word_keys import split_words, vocab_from, with_eos

__all__ = ["byte_range", "read_lines_range", "parallel_word_vocab", "read_corpus_ranges"]

_BLOCK = 1 << 16


def _line_start(f, off: int, size: int) -> int:
    """The first line start at or after ``off``."""
    if off <= 0:
        return 0
    f.seek(off - 1)
    pos = off - 1
    while pos < size:
        block = f.read(_BLOCK)
        if not block:
            break
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(block)
    return size


def byte_range(path: str, rank: int, size: int) -> tuple[int, int]:
    """(start, end) of rank ``rank``'s whole lines among ``size`` ranks."""
    total = os.path.getsize(path)
    with open(path, "rb") as f:
        return (_line_start(f, rank * total // size, total),
                _line_start(f, (rank + 1) * total // size, total))


def read_lines_range(comm, path: str, lower: bool, what: str = "training"):
    """This rank's lines of ``path``, normalised (UTF-8 bytes), and the file's size.

    Every failure is one DataError naming the file, the same on every rank: a missing file,
    bytes that are not UTF-8 (with the line number in the whole file), no text at all."""
    path = os.fspath(path)
    check_file(path, what)
    start, end = byte_range(path, comm.rank, comm.size)
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
    lines_before = comm.allgather(np.array([raw.count(b"\n")], np.int64),
                                  np.empty(comm.size, np.int64))[:comm.rank].sum()
    errors = [e for e in comm.allgather_obj(check_utf8(raw, path, start, int(lines_before)))
              if e]
    if errors:
        raise DataError(errors[0])
    if start == 0 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not text
        raw = raw[3:]
    with comm.tracer.compute("normalise"):
        text = normalize_bytes(raw, lower)
    if not comm.allreduce(np.array([len(text)], np.int64))[0]:
        raise DataError(f"{path}: {what} file has no text (only whitespace)")
    return text, os.path.getsize(path)


def parallel_word_vocab(comm, text: bytes, lower: bool = False, min_count: int = 1,
                        max_size: int | None = None, name: str = "text"):
    """The word ``Vocab`` of the whole text (as ``Vocab.build``) and this rank's id stream
    (``text``: this rank's normalised UTF-8 bytes). Rank 0 merges the ranks' distinct words
    (three ``gatherv``: keys, counts, the words' bytes) and broadcasts the vocabulary and
    the id of every merged key, so the merge is done once, not once per rank. Arrays travel
    as buffers, not pickles: rank 0 holds every rank's words once, not twice."""
    with comm.tracer.compute("words"):
        words = split_words(text)
    with comm.phase("vocabulary: words to rank 0"):
        merged = _gather_words(comm, _distinct(words))
    with comm.tracer.compute("vocabulary"):
        reply = _merge(*merged, lower, min_count, max_size, name) if comm.rank == 0 else None
    del merged
    with comm.phase("vocabulary: ids to every rank"):
        reply = _bcast_reply(comm, reply)
    return _vocab_and_ids(words, reply, lower)


def _distinct(words):
    """(keys, counts, the words joined, collision) of a rank's distinct words, in key order:
    the words travel as one uint8 array (``join_words``' form), not a str each."""
    return (words.distinct, words.counts, np.frombuffer(words.joined(), dtype=np.uint8),
            words.collision)


def _concat(parts):
    """Several ranks' ``_distinct`` as one: (keys, counts, bytes, any collision)."""
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), any(p[3] for p in parts))


def _gather_words(comm, part):
    """Every rank's ``_distinct`` concatenated on rank 0 (None elsewhere)."""
    keys, counts, data, collision = part
    me = np.array([[len(keys), len(data), int(collision)]], dtype=np.int64)
    sizes = comm.gather(me, np.empty((comm.size, 3), np.int64) if comm.rank == 0 else None)
    if comm.rank != 0:
        for buf in (keys, counts, data):
            comm.gatherv(buf)
        return None
    n, nb = sizes[:, 0], sizes[:, 1]
    out = (np.empty(int(n.sum()), np.uint64), np.empty(int(n.sum()), np.int64),
           np.empty(int(nb.sum()), np.uint8))
    for buf, got, c in zip((keys, counts, data), out, (n, n, nb)):
        comm.gatherv(buf, got, c.tolist())
    return (*out, bool(sizes[:, 2].any()))


def _bcast_reply(comm, reply):
    """Rank 0's ``_merge`` result on every rank: an error as it is, else the arrays."""
    head = None
    if comm.rank == 0:
        head = reply if isinstance(reply[0], str) else ("ok", len(reply[0]), len(reply[2]))
    head = comm.bcast_obj(head)
    if head[0] != "ok":
        return head
    if comm.rank == 0:
        merged, remap, data = reply
        data = np.frombuffer(data, dtype=np.uint8).copy()
    else:
        merged, remap = np.empty(head[1], np.uint64), np.empty(head[1], np.int64)
        data = np.empty(head[2], np.uint8)
    for buf in (merged, remap, data):
        comm.bcast(buf)
    return merged, remap, data

def _vocab_and_ids(words, reply, lower: bool):
    """The Vocab from rank 0's reply, and this rank's words as ids."""
    if isinstance(reply[0], str):
        raise (DataError if reply[0] == "DataError" else RuntimeError)(reply[1])
    merged, remap, tokens = reply
    vocab = Vocab.from_joined(tokens, lower)  # strs only if someone reads vocab.tokens
    local = remap[np.searchsorted(merged, words.distinct)]
    return vocab, with_eos(local[words.inverse], words.line_words, EOS)


def _merge(keys, counts, data, collision, lower, min_count, max_size, name):
    """On rank 0: (merged keys, id of each, the tokens after the specials joined), or
    (error kind, message) for every rank to raise. The words stay bytes throughout: long
    words are compared with the word that stands for their key, and the vocabulary is
    ordered by the bytes (``vocab_order``), so no str is made for them here."""
    clash = ("RuntimeError", "two different words have the same 64-bit key; run on one "
             "process, which checks every word by its text")
    if collision:
        return clash
    length = np.flatnonzero(data == ord(" "))  # one after each word: its end, then
    start = np.concatenate([[0], length[:-1] + 1])
    length -= start  # its length
    merged, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    counts = np.bincount(inv, weights=counts, minlength=len(merged)).astype(np.int64)
    long = np.flatnonzero((keys & np.uint64(0xFF)) == 0)  # short keys are the words' bytes
    rep = first[inv[long]]
    del keys, inv  # rank 0 holds every rank's words here: what is done with goes at once
    long, rep = long[rep != long], rep[rep != long]
    if len(long) and (not np.array_equal(length[long], length[rep]) or not np.array_equal(
            ragged_gather(data, start[long], length[long]),
            ragged_gather(data, start[rep], length[rep]))):
        return clash
    del long, rep
    try:
        vocab, remap = vocab_from(data, start[first], length[first], merged, counts, lower,
                                  min_count, max_size, name)
    except DataError as exc:
        return ("DataError", str(exc))
    return merged, remap, vocab.joined(specials=False)


def read_corpus_ranges(comm, path: str, valid: str | None, lower: bool, min_count: int = 1,
                       max_size: int | None = None):
    """``load_corpus(path, valid, tokens="word")`` with each rank reading its byte range:
    (a Corpus of this rank's training and validation sentences, the whole corpus's
    ``summary`` line). Without ``valid`` the split is ``split_lines``'s, by each line's
    index in the whole file (one ``allgather`` of line counts); the vocabulary is the
    whole training text's (``parallel_word_vocab``), so the ids are load_corpus's."""
    text, _ = read_lines_range(comm, path, lower)
    buf = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)  # normalised: every line ends in "\n"
    if valid is None:
        n = comm.allgather(np.array([len(ends)], np.int64), np.empty(comm.size, np.int64))
        slot = line_slots(int(n.sum()), int(n[:comm.rank].sum()), len(ends), path)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)

        def lines(keep):  # the bytes of the lines kept, in order
            k = np.flatnonzero(keep)
            return (ragged_gather(buf, starts[k], ends[k] + 1 - starts[k]).tobytes()
                    if len(k) else b"")
        train, held, test = lines(slot < 18), lines(slot == 18), lines(slot == 19)
        names = {"train": path, "valid": f"{path} (valid split)", "test": f"{path} (test split)"}
    else:
        train, test = text, None
        held, _ = read_lines_range(comm, valid, lower, "validation")
        names = {"train": path, "valid": valid}
    vocab, ids = parallel_word_vocab(comm, train, lower, min_count, max_size, path)
    vids = vocab.encode(held.decode("utf-8"), normalized=True)
    # tokens of the test lines, only for the summary: every word ends at one separator
    nt = -1 if test is None else test.count(b" ") + 2 * test.count(b"\n")
    tot = comm.allreduce(np.array([len(ids), len(vids), nt], np.int64))
    if tot[0] == 0:
        raise DataError(f"{path}: no training tokens to count")
    sizes = ", ".join(f"{k} {int(v):,}" for k, v in zip(("train", "valid", "test"), tot)
                      if v >= 0)
    summary = f"{path}: word tokens, vocabulary {len(vocab):,}; {sizes}"
    return Corpus(ids, vids, None, vocab, names), summary

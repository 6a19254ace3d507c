"""Corpus loading: built-in text, files, the deterministic split, clear errors."""

import numpy as np
import pytest

from minipar.data.corpus import load_corpus, read_text, split_lines
from minipar.data.tokenize import EOS, UNK
from minipar.core.errors import ConfigError, DataError


def test_builtin_corpus_char_and_word():
    c = load_corpus()
    assert c.vocab.kind == "char"
    n = len(c.train) + len(c.valid) + len(c.test)
    assert 0.85 < len(c.train) / n < 0.95 and 0.02 < len(c.valid) / n < 0.08
    assert c.train[-1] == EOS and c.train.dtype == np.int64
    again = load_corpus()
    assert np.array_equal(c.train, again.train) and np.array_equal(c.test, again.test)
    w = load_corpus(tokens="word", max_chars=50_000)
    assert w.vocab.kind == "word" and len(w.train) < 12_000
    train, valid, test, vocab = w  # unpacks like a tuple
    assert vocab is w.vocab


def test_split_blocks_are_contiguous_and_deterministic():
    lines = [f"line {i}" for i in range(1000)]
    tr, va, te = split_lines(lines)
    assert len(tr) == 900 and len(va) == 50 and len(te) == 50
    assert va[:6] == [f"line {i}" for i in (90, 91, 92, 93, 94, 190)]  # block 18 of 5 lines
    assert set(tr) | set(va) | set(te) == set(lines)
    with pytest.raises(DataError, match="too few"):
        split_lines(lines[:10], "tiny.txt")


def test_file_with_valid_and_vocab_from_train_only(tmp_path):
    (tmp_path / "train.txt").write_text("a b a\nb a\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("a c\n", encoding="utf-8")
    c = load_corpus(tmp_path / "train.txt", valid=tmp_path / "valid.txt", tokens="word")
    assert c.test is None
    assert c.valid.tolist() == [c.vocab.index["a"], UNK, EOS]
    with pytest.raises(ConfigError):
        load_corpus(tmp_path / "train.txt", test=tmp_path / "valid.txt")


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    (b"", "empty"),
    (b"  \n\t\n", "empty"),
    (b"ok\n\xff\xfe bad", r"not UTF-8 .*line 2"),
])
def test_bad_files_are_one_clear_error(tmp_path, content, match):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        load_corpus(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_directory_and_short_file(tmp_path):
    with pytest.raises(DataError, match="directory"):
        read_text(tmp_path)
    (tmp_path / "short.txt").write_text("one line\n")
    with pytest.raises(DataError, match="short.txt.*too few"):
        load_corpus(tmp_path / "short.txt")

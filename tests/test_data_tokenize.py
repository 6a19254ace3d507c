"""Tokenizers and Vocab: normalisation, ids, cut-offs, round trips, files."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minipar.data.tokenize import BOS, EOS, SPECIALS, UNK, Vocab, normalize_text
from minipar.core.errors import ConfigError, DataError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_normalize_collapses_whitespace_and_drops_blank_lines():
    text = "  Hello\t\tworld \r\n\n\u00a0\nsecond\u2028line  \n"
    assert normalize_text(text) == "Hello world\nsecond\nline\n"
    assert normalize_text("A\u0301b", lower=True) == "\u00e1b\n"  # NFC after lower-casing
    assert normalize_text(" \n\t ") == ""


def test_vocab_order_specials_and_cutoffs():
    text = normalize_text("b a a c\nc a\n")
    v = Vocab.build(text, "word")
    assert v.tokens[:3] == list(SPECIALS)
    assert v.tokens[3:] == ["a", "c", "b"]  # count descending, ties by code point
    assert Vocab.build(text, "word", min_count=2).tokens[3:] == ["a", "c"]
    assert Vocab.build(text, "word", max_size=4).tokens[3:] == ["a"]
    ids = Vocab.build(text, "word", min_count=3).encode("a b zzz\n")
    assert ids.tolist() == [3, UNK, UNK, EOS]


def test_vocab_with_nothing_in_it_is_a_data_error():
    with pytest.raises(DataError, match="corpus.txt.*nothing in it"):
        Vocab.build(normalize_text("a b c\n"), "word", min_count=5, name="corpus.txt")
    with pytest.raises(DataError, match="empty"):
        Vocab.build("", "char", name="x")
    with pytest.raises(ConfigError):
        Vocab.build("a\n", "char", min_count=0)


def test_char_encoding_and_line_breaks():
    v = Vocab.build(normalize_text("ab a\n"), "char")
    ids = v.encode("ab\nz a")
    assert ids.tolist() == [v.index["a"], v.index["b"], EOS, UNK, v.index[" "],
                            v.index["a"], EOS]
    assert v.decode(ids) == "ab\n<unk> a\n"
    assert BOS not in ids


def test_literal_special_words_are_unknown():
    v = Vocab.build(normalize_text("x </s> <s> y\n"), "word")
    assert "</s>" not in v.tokens[3:] and "<s>" not in v.tokens[3:]
    assert v.encode("x </s> <s> <unk>").tolist() == [v.index["x"], UNK, UNK, UNK, EOS]


def test_encode_line_and_lower():
    v = Vocab.build(normalize_text("The cat\n", lower=True), "word", lower=True)
    assert v.encode_line("THE CAT").tolist() == [v.index["the"], v.index["cat"]]


def test_save_load_roundtrip(tmp_path):
    v = Vocab.build(normalize_text("h\u00e9llo w\u00f6rld\n"), "char", lower=True)
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == v
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json"):
        Vocab.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        Vocab.load(tmp_path / "missing.json")


@FAST
@given(st.text())
def test_char_roundtrip_any_unicode(text):
    norm = normalize_text(text)
    assume(norm)
    v = Vocab.build(norm, "char")
    ids = v.encode(text)
    assert ids.dtype == np.int64 and (ids != UNK).all()
    assert v.decode(ids) == norm
    assert (ids == EOS).sum() == norm.count("\n")


@FAST
@given(st.lists(st.text(min_size=1), min_size=1, max_size=20), st.booleans())
def test_word_roundtrip_any_unicode(words, lower):
    text = " ".join(words)
    norm = normalize_text(text, lower)
    assume(norm and not set(norm.split()) & set(SPECIALS))
    v = Vocab.build(norm, "word", lower=lower)
    ids = v.encode(text)
    assert (ids != UNK).all()
    assert v.decode(ids) == norm


_TEXT = st.text(st.sampled_from(list("ab Z\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
                                     "\u00a0\u3000\u200bÉẞ\u0301e日\U0001F600.'İ")), max_size=60)


@settings(max_examples=200, deadline=None)
@given(_TEXT, st.booleans())
def test_normalize_bytes_gives_normalize_text_exactly(text, lower):
    """load_corpus and the N-gram readers normalise bytes with array operations; the lines
    must be normalize_text's, unicode white space, line breaks, NFC and lower-casing too."""
    from minipar.data.fast_text import normalize_bytes

    fast = normalize_bytes(text.encode("utf-8"), lower).decode("utf-8")
    assert fast.splitlines() == normalize_text(text, lower).splitlines()


_WORD = st.text(st.sampled_from(list("abZÉẞe日\U0001F600.'İ\u0301\u200b")), min_size=1, max_size=4)
_GAP = st.sampled_from([" ", "\n", " ", "\n", "  ", "\t", "\r\n", "\u00a0", "\u2028", "\x1f"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_WORD, _GAP), min_size=1, max_size=12), st.booleans(),
       st.booleans())
def test_normalize_bytes_on_text_that_is_almost_normal(pieces, lower, lead):
    """Text that is already normalised comes back as it is, without steps 1-3
    (``_already_normal``); text one separator or one character away must not."""
    from minipar.data.fast_text import normalize_bytes

    text = (" " if lead else "") + "".join(w + g for w, g in pieces)
    fast = normalize_bytes(text.encode("utf-8"), lower)
    assert fast.decode("utf-8").splitlines() == normalize_text(text, lower).splitlines()
    assert normalize_bytes(fast, lower) == fast  # normalised text is a fixed point


def test_vocab_from_joined_bytes_makes_strs_only_when_asked():
    from minipar.data.tokenize import join_words

    v = Vocab.from_joined(join_words(["b", "a", "é"]))
    assert len(v) == 6 and v._tokens is None  # nothing decoded yet
    assert v.joined(specials=False) == "b a é ".encode()
    assert v.joined() == "<unk> <s> </s> b a é ".encode()
    assert v == Vocab(list(SPECIALS) + ["b", "a", "é"], "word")
    assert v.encode("a b c\n").tolist() == [4, 3, UNK, EOS]

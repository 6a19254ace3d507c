"""ARPA and native files, sampling, and the command line."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minipar import ngram as cli
from minipar.data.corpus import load_corpus
from minipar.data.tokenize import Vocab, normalize_text
from minipar.core.errors import ConfigError, DataError
from minipar.models.ngram_lm import NGramModel, load_model

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def words():
    return load_corpus(tokens="word", max_chars=60_000)


@pytest.mark.parametrize("smoothing", ["kn", "ml"])
def test_arpa_write_read_same_probabilities(tmp_path, words, smoothing):
    m = NGramModel.fit(words.train, words.vocab, order=4, smoothing=smoothing)
    m.write_arpa(tmp_path / "m.arpa")
    text = (tmp_path / "m.arpa").read_text(encoding="utf-8")
    assert text.startswith("\n\\data\\\nngram 1=") and text.endswith("\\end\\\n")
    assert "\n0\t<s>\t" in text  # lmplz's placeholder for <s>
    back = load_model(tmp_path / "m.arpa")
    assert back.vocab.tokens[:3] == words.vocab.tokens[:3]
    assert set(back.vocab.tokens) == set(words.vocab.tokens)
    a = m.log10probs(words.test)
    b = back.log10probs(back.vocab.encode(words.vocab.decode(words.test)))
    finite = np.isfinite(a)
    assert np.array_equal(finite, np.isfinite(b))
    assert a[finite] == pytest.approx(b[finite], abs=1e-8)


def test_top_order_has_no_backoff_and_bad_arpa_is_clear(tmp_path, words):
    m = NGramModel.fit(words.train, words.vocab, order=2)
    m.write_arpa(tmp_path / "m.arpa")
    section = (tmp_path / "m.arpa").read_text().split("\\2-grams:\n")[1]
    assert all(line.count("\t") == 1 for line in section.splitlines()[:50])
    (tmp_path / "bad.arpa").write_text("\n\\data\\\nngram 1=3\n\n\\1-grams:\n-1\ta\n")
    with pytest.raises(DataError, match="bad.arpa"):
        load_model(tmp_path / "bad.arpa")
    with pytest.raises(ConfigError):
        NGramModel.fit(words.train, words.vocab, 2, "addk").write_arpa(tmp_path / "x.arpa")


@FAST
@given(st.text(min_size=1, max_size=200))
def test_char_arpa_roundtrip_any_unicode(tmp_path_factory, text):
    norm = normalize_text(text)
    assume(norm)
    vocab = Vocab.build(norm, "char")
    ids = vocab.encode(norm, normalized=True)
    m = NGramModel.fit(ids, vocab, order=3)
    path = tmp_path_factory.mktemp("arpa") / "c.arpa"
    m.write_arpa(path)
    back = NGramModel.from_arpa(path, tokens="char")
    probe = norm + "\u2603 x\n"  # an unknown character too
    a = m.log10probs(vocab.encode(probe))
    b = back.log10probs(back.vocab.encode(probe))
    assert a == pytest.approx(b, abs=1e-8)


def test_native_save_load(tmp_path, words):
    for smoothing in ("kn", "addk", "stupid"):
        m = NGramModel.fit(words.train, words.vocab, order=3, smoothing=smoothing, k=0.1)
        m.save(tmp_path / "m.npz")
        back = load_model(tmp_path / "m.npz")
        assert back.vocab == m.vocab and back.smoothing == smoothing
        assert np.array_equal(back.log10probs(words.test), m.log10probs(words.test))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 junk")
    with pytest.raises(DataError, match="junk.npz"):
        load_model(tmp_path / "junk.npz")


def test_sampling_is_seeded_and_temperature_zero_is_greedy(words):
    m = NGramModel.fit(words.train, words.vocab, order=3)
    a = m.sample(4, max_len=30, seed=7)
    assert [x.tolist() for x in a] == [x.tolist() for x in m.sample(4, max_len=30, seed=7)]
    assert all(len(x) <= 30 and (x > 2).all() for x in a)  # no specials inside a sentence
    g = m.sample(2, max_len=10, temperature=0)
    assert g[0].tolist() == g[1].tolist()
    first = m.distributions([[]])[0]
    first[[0, 1]] = 0
    assert g[0][0] == first.argmax()


def test_cli_fit_ppl_sample(tmp_path, capsys):
    lines = [f"the cat sat on mat number {i % 7}" for i in range(60)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.txt").write_text("the cat sat on mat number 3\nthe dog\n")
    out, arpa = tmp_path / "m.npz", tmp_path / "m.arpa"
    assert cli.main(["fit", str(tmp_path / "train.txt"), "--order", "3", "--out", str(out),
                     "--arpa", str(arpa), "--test", str(tmp_path / "test.txt"),
                     "--quiet"]) == 0
    fit_out = capsys.readouterr().out
    assert "tokens" in fit_out and "ppl" in fit_out
    assert cli.main(["ppl", str(out), str(tmp_path / "test.txt"), "--json", "--quiet"]) == 0
    r1 = json.loads(capsys.readouterr().out)
    assert r1["tokens"] == 11 and r1["oov"] == 1 and r1["sentences"] == 2
    assert cli.main(["ppl", str(arpa), str(tmp_path / "test.txt"), "--json", "--quiet"]) == 0
    r2 = json.loads(capsys.readouterr().out)
    assert r2["ppl"] == pytest.approx(r1["ppl"], rel=1e-8)
    assert cli.main(["sample", str(out), "-n", "2", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["ppl", str(tmp_path / "nope.npz"), "builtin:test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minipar: error: ") and "nope.npz" in err and "Traceback" not in err
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert cli.main(["fit", str(tmp_path / "latin1.txt"), "--quiet"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_cli_notes_an_option_without_effect(tmp_path, capsys):
    train = tmp_path / "t.txt"
    train.write_text("a b c d\na b d\n")
    assert cli.main(["fit", str(train), "--order", "2", "--k", "0.5", "--quiet"]) == 0
    notes = [x for x in capsys.readouterr().err.splitlines() if "note:" in x]
    assert notes == ["minipar: note: --k has no effect here: it is for --smoothing addk"]
    assert cli.main(["fit", str(train), "--order", "2", "--smoothing", "addk", "--k", "0.5",
                     "--quiet"]) == 0
    assert "note" not in capsys.readouterr().err

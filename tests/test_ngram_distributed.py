"""The N-gram model on P ranks (minipar.training.ngram_read, ngram_distributed): byte
ranges, the vocabulary from word keys, the ARPA formatting, and the whole model under
``mpiexec -n P``, byte for byte equal to one process's ARPA file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mpiutil import run_mpi

from minipar.data.corpus import builtin_text
from minipar.data.tokenize import Vocab, normalize_text
from minipar.data.word_keys import split_words, word_vocab_and_ids
from minipar.core.ragged import ragged_gather
from minipar.models.arpa_format import LineFormatter, LinePool, format_numbers
from minipar.models.ngram_counts import count_ngrams, unique_inverse
from minipar.models.ngram_lm import load_model
from minipar.training.ngram_read import byte_range

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = st.sampled_from(["a", "b", "the", "<s>", "</s>", "<unk>", "élan", "'elements",
                         "(element,", "abcdefgh", "abcdefghX", "abcdefghY", "x" * 40,
                         "x" * 41, "日本語のテキスト", "a\x00b"])


@FAST
@given(st.lists(st.lists(WORDS, min_size=0, max_size=8), min_size=1, max_size=30),
       st.integers(1, 3), st.sampled_from([None, 5, 8]))
def test_word_keys_give_vocab_build_exactly(lines, min_count, max_size):
    text = normalize_text("\n".join(" ".join(line) for line in lines))
    if not text.strip():
        return
    try:
        ref = Vocab.build(text, "word", min_count=min_count, max_size=max_size)
    except Exception as exc:  # the same error from both paths
        with pytest.raises(type(exc)):
            word_vocab_and_ids(text, min_count=min_count, max_size=max_size)
        return
    vocab, ids = word_vocab_and_ids(text, min_count=min_count, max_size=max_size)
    assert vocab == ref
    assert np.array_equal(ids, ref.encode(text, normalized=True))


@FAST
@given(st.lists(st.lists(WORDS, min_size=0, max_size=8), min_size=1, max_size=30),
       st.integers(1, 4), st.integers(1, 3), st.sampled_from([None, 5, 8]))
def test_words_merged_from_ranks_give_vocab_build_exactly(lines, p, min_count, max_size):
    """parallel_word_vocab's steps without MPI: each of p parts of the lines finds its
    distinct words, rank 0's _merge makes the vocabulary, each part gets its ids."""
    from minipar.training.ngram_read import _concat, _distinct, _merge, _vocab_and_ids

    texts = [normalize_text("\n".join(" ".join(line) for line in lines[r::p])) for r in
             range(p)]
    whole = "".join(texts)  # normalize_text ends every line with "\n"
    if not whole.strip():
        return
    words = [split_words(t) for t in texts]
    reply = _merge(*_concat([_distinct(w) for w in words]), False, min_count, max_size, "t")
    try:
        ref = Vocab.build(whole, "word", min_count=min_count, max_size=max_size)
    except Exception as exc:  # the same error from both paths
        with pytest.raises(type(exc)):
            _vocab_and_ids(words[0], reply, False)
        return
    for w, t in zip(words, texts):
        vocab, ids = _vocab_and_ids(w, reply, False)
        assert vocab == ref
        assert np.array_equal(ids, ref.encode(t, normalized=True) if t else ids[:0])


@pytest.mark.parametrize("texts", [["abcdefghX", "abcdefghY"],
                                   ["abcdefghX", "bbbbbbbbbb", "cccccccccc"]])
def test_merge_refuses_two_words_with_one_key(texts):
    """A hash collision between ranks' long words (forged here: real ones are 1 in 2^56)
    is reported."""
    from minipar.training.ngram_read import _concat, _merge

    key = np.uint64(0xABCDEF00)  # a long word's key: low byte 0
    keys = [key if t in (texts[0], texts[-1]) else np.uint64(0x1200) for t in texts]
    parts = [(np.array([k], np.uint64), np.array([1]),
              np.frombuffer((t + " ").encode(), np.uint8), False) for k, t in zip(keys, texts)]
    assert _merge(*_concat(parts), False, 1, None, "t")[0] == "RuntimeError"


@FAST
@given(st.lists(st.text(st.characters(blacklist_categories=("Zs", "Cc", "Cs")), min_size=1,
                        max_size=6), max_size=40), st.integers(1, 5))
def test_words_joined_as_bytes_come_back_the_same(words, block):
    """join_words / split_joined, with blocks smaller than the list (astral characters too)."""
    import minipar.data.tokenize as wk

    old, wk._BLOCK = wk._BLOCK, block
    try:
        data = wk.join_words(words)
        assert data == "".join(w + " " for w in words).encode("utf-8")
        assert wk.split_joined(data) == words
    finally:
        wk._BLOCK = old


@FAST
@given(st.lists(st.tuples(st.sampled_from(["", "abcdefgh", "abcdefghabcdefgh", "x" * 23]),
                          st.text(st.sampled_from("ab\x00é日"), max_size=10)),
                unique=True, max_size=40),
       st.lists(st.integers(1, 3), min_size=40, max_size=40))
@example([("", "a\x00"), ("", "a"), ("", "ab"), ("abcdefgh", "\x00"), ("", "a\x00\x00"),
          ("abcdefgh", "")], [2] * 40)  # tied to the last byte: the shorter word first
def test_vocab_order_of_bytes_is_python_sort_of_strs(parts, counts):
    """Count descending, ties in code-point order, found 8 bytes at a time: the order of
    sorted() on the strs, for words sharing long prefixes, NUL bytes and multi-byte
    characters."""
    from minipar.data.word_keys import vocab_order

    words = [a + b for a, b in parts if a + b]
    words = list(dict.fromkeys(words))
    data = np.frombuffer("".join(w + " " for w in words).encode(), dtype=np.uint8)
    length = np.array([len(w.encode()) for w in words], dtype=np.int64)
    start = np.cumsum(length + 1) - length - 1
    c = np.array(counts[:len(words)], dtype=np.int64)
    want = sorted(range(len(words)), key=lambda i: (-c[i], words[i]))
    assert vocab_order(data, start, length, c).tolist() == want


def test_long_words_sharing_eight_bytes_get_different_keys():
    words = split_words("'elements (element, abcdefghX abcdefghY abcdefghX\n")
    assert not words.collision
    assert len(words.distinct) == 4 and words.counts.tolist().count(2) == 1


def test_numbers_are_fixed_point_without_trailing_point():
    v = np.array([0.0, -0.0, -np.inf, -1.5, -2.25, -99.0, 1e-12, -0.1234567894, -12.0, 3.5])
    m, s, n = format_numbers(v, decimals=9)
    got = [bytes(m[i, s[i]:s[i] + n[i]]).decode() for i in range(len(v))]
    assert got == ["0", "0", "-99", "-1.500000000", "-2.250000000", "-99", "0",
                   "-0.123456789", "-12", "3.500000000"]
    rng = np.random.default_rng(0)
    x = -rng.exponential(3.0, 5000)
    m, s, n = format_numbers(x)
    back = np.array([float(bytes(m[i, s[i]:s[i] + n[i]])) for i in range(len(x))])
    assert np.abs(back - x).max() <= 0.5e-9 + 1e-15


def test_line_pool_gives_one_formatters_lines_in_order():
    """Chunks formatted by three threads come back as one formatter's lines, in order, with
    the items that are not chunks (section titles) in their places."""
    rng = np.random.default_rng(2)
    tokens = ["<unk>", "<s>", "</s>", "a", "élan", "x" * 30, "日本"]
    jobs = []
    for i in range(40):
        n = int(rng.integers(0, 50))
        rows = rng.integers(0, len(tokens), (n, 1 + i % 3)).astype(np.int32)
        jobs.append((rows, -rng.exponential(2.0, n), None if i % 4 else -rng.random(n)))
    items = [(i, job if i % 5 else f"title {i}".encode()) for i, job in enumerate(jobs)]
    one = LineFormatter(tokens)
    want = [(i, one.lines(*x) if isinstance(x, tuple) else x) for i, x in items]
    for threads in (1, 3):
        assert list(LinePool(tokens, threads).stream(iter(items))) == want


def test_ragged_gather_and_unique_inverse():
    src = np.frombuffer(b"abcdefghij", dtype=np.uint8)
    out = ragged_gather(src, np.array([3, 0, 9, 3]), np.array([2, 1, 1, 3]))
    assert out.tobytes() == b"dea" + b"j" + b"def"
    key = np.random.default_rng(1).integers(0, 1000, 5000)
    for a, b in zip(unique_inverse(key), np.unique(key, return_inverse=True,
                                                   return_counts=True)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("text", [b"one two\nthree\nfour five six\n", b"x" * 5000 + b"\n",
                                  b"a\nb", b"\n\n\nlast line\n"])
def test_byte_ranges_cut_at_line_starts_and_cover_the_file(tmp_path, text):
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    for size in range(1, 7):
        ranges = [byte_range(str(path), r, size) for r in range(size)]
        assert ranges[0][0] == 0 and ranges[-1][1] == len(text)
        for (a, b), (c, _) in zip(ranges, ranges[1:]):
            assert b == c and a <= b
        for a, _ in ranges:
            assert a == 0 or a == len(text) or text[a - 1:a] == b"\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A word corpus of the built-in text: ~1,400 lines, so P ranks cut it mid-line."""
    d = tmp_path_factory.mktemp("ngd")
    lines = normalize_text(builtin_text()).splitlines()[:1400]
    path = d / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "test.txt").write_text("\n".join(normalize_text(builtin_text()).splitlines()[-200:])
                                + "\n", encoding="utf-8")
    return d


def _fit(n, d, name, extra=()):
    args = ["-m", "minipar.ngram", "fit", str(d / "train.txt"), "--order", "4", "--quiet",
            "--arpa", str(d / name), *extra]
    return run_mpi(n, args, timeout=120)  # n = 1: the serial path


def test_arpa_bytes_equal_on_1_to_4_ranks(corpus):
    """The ARPA file, the test perplexity of the sharded model, and the sentences drawn
    from it with the same seed equal one process's."""
    more = ["--json", "--test", str(corpus / "test.txt"), "--sample", "6", "--seed", "5"]
    ref = json.loads(_fit(1, corpus, "p1.arpa", more).stdout)
    assert len(ref["sample"]) == 6 and any(len(t.split()) > 3 for t in ref["sample"])
    one = (corpus / "p1.arpa").read_bytes()
    text = (corpus / "train.txt").read_bytes()
    cuts = [r * len(text) // n for n in (2, 3, 4) for r in range(1, n)]
    assert any(text[c - 1:c] != b"\n" for c in cuts)  # some even cuts fall inside a line
    for n in (2, 3, 4):
        out = json.loads(_fit(n, corpus, f"p{n}.arpa", more).stdout)
        assert (corpus / f"p{n}.arpa").read_bytes() == one, n
        assert not list(corpus.glob("*.tmp*"))
        assert out["ranks"] == n and out["test"] == ref["test"]  # every float equal
        assert out["sample"] == ref["sample"], n


def test_native_model_from_ranks_scores_like_one_process(corpus):
    _fit(1, corpus, "o1.arpa", ["--out", str(corpus / "o1.npz")])
    _fit(3, corpus, "o3.arpa", ["--out", str(corpus / "o3.npz")])
    test = normalize_text((corpus / "test.txt").read_text(encoding="utf-8"))
    a, b = load_model(corpus / "o1.npz"), load_model(corpus / "o3.npz")
    assert a.vocab == b.vocab
    ids = a.vocab.encode(test, normalized=True)
    assert np.array_equal(a.log10probs(ids), b.log10probs(ids))


@pytest.mark.parametrize("tokens", ["char", "word"])
def test_builtin_corpus_sharded_on_ranks_equals_one_process(tmp_path, tokens):
    """Without a file (the built-in corpus) and with character tokens, Kneser-Ney stays
    sharded too: the ARPA bytes (<space> for the space character), model.npz, the test
    perplexity on builtin:test and the sample equal one process's."""
    def fit(n):
        args = ["-m", "minipar.ngram", "fit", "--order", "4", "--tokens", tokens, "--quiet",
                "--json", "--sample", "2", "--arpa", str(tmp_path / f"{n}.arpa"),
                "--out", str(tmp_path / f"{n}.npz")]
        return json.loads(run_mpi(n, args, timeout=120).stdout)

    ref = fit(1)
    for n in (2, 3):
        out = fit(n)
        assert (tmp_path / f"{n}.arpa").read_bytes() == (tmp_path / "1.arpa").read_bytes()
        assert out["test"] == ref["test"] and out["sample"] == ref["sample"], n
        a, b = np.load(tmp_path / "1.npz"), np.load(tmp_path / f"{n}.npz")
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[f], b[f]) for f in a.files), n
    if tokens == "char":
        assert b"<space>" in (tmp_path / "1.arpa").read_bytes()


def test_counts_of_a_rank_range_add_up(corpus):
    """Counting each rank's byte range and merging equals counting the whole file."""
    text = normalize_text((corpus / "train.txt").read_text(encoding="utf-8"))
    vocab, ids = word_vocab_and_ids(text)
    whole = count_ngrams(ids, 3)
    path = str(corpus / "train.txt")
    raw = (corpus / "train.txt").read_bytes()
    total = np.zeros(len(vocab), dtype=np.int64)
    for r in range(3):
        a, b = byte_range(path, r, 3)
        part = vocab.encode(raw[a:b].decode("utf-8"))
        c = count_ngrams(part, 1)
        total[c.grams[0][:, 0]] += c.counts[0]
    assert np.array_equal(total[whole.grams[0][:, 0]], whole.counts[0])


def test_more_ranks_than_lines_and_one_huge_line(tmp_path):
    (tmp_path / "two.txt").write_text("a b c\nb c d\n")
    big = " ".join(f"w{i % 500}" for i in range(20000))
    (tmp_path / "huge.txt").write_text(big + "\nw1 w2\n")
    for name in ("two.txt", "huge.txt"):
        args = ["-m", "minipar.ngram", "fit", str(tmp_path / name), "--order", "3", "--quiet"]
        run_mpi(1, args + ["--arpa", str(tmp_path / f"{name}.1")], timeout=60)
        run_mpi(4, args + ["--arpa", str(tmp_path / f"{name}.4")], timeout=60)
        assert (tmp_path / f"{name}.1").read_bytes() == (tmp_path / f"{name}.4").read_bytes()


def test_bad_bytes_are_one_clear_line_naming_the_line(tmp_path):
    good = "\n".join(f"line {i} of text" for i in range(300)) + "\n"
    raw = good.encode() + b"bad \xff byte\n" + good.encode()
    (tmp_path / "bad.txt").write_bytes(raw)
    proc = run_mpi(3, ["-m", "minipar.ngram", "fit", str(tmp_path / "bad.txt"),
                       "--arpa", str(tmp_path / "m.arpa")], timeout=60, check=False)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if "not UTF-8" in ln]
    assert len(errors) == 1 and "line 301" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "m.arpa")


def test_bench_ngram_ranks_reports_stages_and_identical_files():
    proc = subprocess.run([sys.executable, "-m", "minipar.bench", "ngram_ranks", "--words",
                           "20000", "--ranks", "1,2", "--repeat", "1", "--order", "3",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["arpa_identical"] is True
    # one process as it is, then on one thread (the bound's baseline), then 2 ranks
    assert [(r["ranks"], r["one_thread"]) for r in out["runs"]] == [(1, False), (1, True),
                                                                     (2, False)]
    for r in out["runs"]:
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 0 and r["tokens"] > 20000
        assert set(r["stages"]) >= {"read", "vocab", "count", "adjust", "discount",
                                    "estimate", "write"}
        assert r["tokens_per_s"] > 0 and set(r["peak_mb"]) == set(r["stages"])
        assert 0 < r["outside_s"] < r["seconds"]  # start-up and end, wall less the stages
    assert "exchange" in out["runs"][2]["stages"]


def test_bench_ngram_ranks_bound_splits_the_one_thread_runs_stages_over_the_cores():
    from minipar.bench.ngram_ranks import bound_line
    rows = [{"program": "lmplz", "ranks": 1, "seconds": 3.0},
            {"program": "minipar", "ranks": 1, "one_thread": False, "seconds": 4.0,
             "stages": {"read": 1.0, "write": 2.0}},
            {"program": "minipar", "ranks": 1, "one_thread": True, "seconds": 5.0,
             "outside_s": 0.5, "stages": {"read": 1.5, "exchange": float("nan"), "write": 3.0}},
            {"program": "minipar", "ranks": 2, "one_thread": False, "seconds": 3.2,
             "outside_s": 0.6, "stages": {}},
            {"program": "minipar", "ranks": 4, "one_thread": False, "seconds": 4.0,
             "outside_s": 0.75, "stages": {}}]
    # 4.5 s in the one-thread run's stages; 2 ranks: 4.0 / (0.6 + 4.5 / 2) = 1.40 on 2 cores
    assert bound_line(rows, cores=2) == (
        "over one process: 2 ranks 1.25x (at most 1.40x on 2 cores, start-up and end 0.60 s), "
        "4 ranks 1.00x (at most 1.33x on 2 cores, start-up and end 0.75 s); the bound: the "
        "one-thread run's stages (4.50 s) split over the cores with nothing exchanged")
    assert "4 ranks 1.00x (at most 2.13x on 4 cores" in bound_line(rows, cores=8)  # 4 / 1.875
    assert bound_line(rows[:2], cores=2) is None  # no one-thread run: no bound


def test_trace_writes_the_timeline_and_keeps_json_clean(tmp_path, corpus):
    out = run_mpi(2, ["-m", "minipar.ngram", "fit", str(corpus / "train.txt"), "--order", "3",
                      "--arpa", str(tmp_path / "m.arpa"), "--trace", str(tmp_path / "tr"),
                      "--json", "--quiet"], timeout=120)
    d = json.loads(out.stdout)
    assert set(d["stages_per_rank"][1]) >= {"read", "vocab", "count", "exchange", "estimate"}
    assert (tmp_path / "tr" / "timeline.png").stat().st_size > 0
    trace = json.loads((tmp_path / "tr" / "trace.json").read_text())
    names = {e.get("name") for e in trace["traceEvents"]} if isinstance(trace, dict) else {
        e.get("name") for e in trace}
    assert {"words", "count", "estimate"} <= names
    alone = subprocess.run([sys.executable, "-m", "minipar.ngram", "fit",
                            str(corpus / "train.txt"), "--trace", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2 and "mpiexec" in alone.stderr and "Traceback" not in alone.stderr


@pytest.mark.parametrize("extra,message", [
    (["--arpa", "/nonexistent-folder/m.arpa"], "does not exist"),
    (["--out", "/nonexistent-folder/m.npz"], "does not exist"),
    (["--test", "/nonexistent-folder/t.txt"], "test file not found"),
    (["--sample", "-1"], "--sample must be 0 or more sentences, got -1"),
])
def test_bad_outputs_are_refused_before_any_work(tmp_path, extra, message):
    (tmp_path / "t.txt").write_text("a b c\nb c d\n")
    args = ["-m", "minipar.ngram", "fit", str(tmp_path / "t.txt"), "--order", "2", *extra]
    for n in (1, 2):
        proc = run_mpi(n, args, timeout=60, check=False)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr

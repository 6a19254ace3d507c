"""Parallel N-gram counting (minipar.training.ngram_mapreduce): P ranks give the one-process
model exactly.

The MPI tests run under ``mpiexec -n P`` (P = 1, 2, 3, 4) with a timeout; the data is a
20,000-character slice of the built-in corpus so that each launch takes about a second.
"""

import json
import os
import signal

import numpy as np
import pytest
from mpiutil import run_code, run_mpi

from minipar.training import ngram_mapreduce as NP
from minipar.training import ngram_train
from minipar import train
from minipar.training.config import TrainConfig
from minipar.data import load_corpus
from minipar.data.corpus import builtin_text
from minipar.core.errors import ConfigError
from minipar.models.kneser_ney import FALLBACK, discounts_from_t, estimate_discounts
from minipar.models.ngram_lm import NGramModel, load_model
from minipar.comm.communicator import init

SMALL = ["--max-chars", "20000"]

# On every rank: ownership by the hash of the context; on rank 0: the gathered counts and
# every smoothing's log-probabilities against the one-process code.
CHECK = r"""
import numpy as np
from minipar.training import ngram_mapreduce as NP
from minipar.data import load_corpus
from minipar.models.ngram_lm import NGramModel
from minipar.models.ngram_counts import count_ngrams
from minipar.comm.communicator import init

comm = init(trace=True)
for tokens, order in (("char", 5), ("word", 3), ("word", 1)):
    c = load_corpus(None, tokens=tokens, max_chars=20000)
    v = c.vocab
    ref = count_ngrams(c.train, order, v.bos_id, v.eos_id)
    part = NP.parallel_counts(comm, c.train, order, v.bos_id, v.eos_id)
    for k, (rows, cnt) in enumerate(part["owned"], start=1):
        assert (NP.owner(rows, comm.size) == comm.rank).all(), (tokens, k)
    merged, sizes = NP.gather_counts(comm, part["owned"], part["sentences"], part["tokens"])
    if comm.rank == 0:
        assert merged.equals(ref), tokens
        assert sizes.sum(axis=0).tolist() == ref.num_grams()
        for sm in ("kn", "ml", "addk", "stupid"):
            lp = NGramModel.from_counts(merged, v, sm).log10probs(c.valid)
            assert np.array_equal(lp, NGramModel.fit(c.train, v, order, sm).log10probs(c.valid))
rows = comm.report(table=False)
if comm.rank == 0:
    # every byte went through the traced comm: alltoall + alltoallv per shuffle
    assert all(r["mpi_colls"] > 0 for r in rows)
    print("checked", comm.size)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_distributed_counts_and_statistics_equal_one_process(p):
    out = run_code(p, CHECK, timeout=120).stdout
    assert f"checked {p}" in out


def _one_process(tokens, order, smoothing="kn"):
    c = load_corpus(None, tokens=tokens, max_chars=20000)
    return c, NGramModel.fit(c.train, c.vocab, order, smoothing)


@pytest.mark.mpi
@pytest.mark.parametrize("p,tokens,order", [(1, "char", 5), (2, "word", 3), (3, "char", 5),
                                            (4, "word", 4)])
def test_train_cli_model_equals_one_process(p, tokens, order, tmp_path):
    out = tmp_path / "run"
    args = ["-m", "minipar.train", "--model", "ngram", "--tokens", tokens, "--order",
            str(order), "--out", str(out), *SMALL]
    if p == 2:
        args.append("--show-comm")
    proc = run_mpi(p, args, timeout=120)
    c, ref = _one_process(tokens, order)
    model = load_model(out / "model.npz")
    for k in range(order):
        assert np.array_equal(model.grams[k], ref.grams[k])
        assert np.array_equal(model.counts[k], ref.counts[k])
    assert np.array_equal(model.log10probs(c.valid), ref.log10probs(c.valid))
    s = json.loads((out / "summary.json").read_text())
    assert s["val_ppl"] == ref.perplexity(c.valid)["ppl"]
    assert (s["ranks"], s["order"], s["smoothing"], s["tokens"]) == (p, order, "kn", ref.tokens)
    assert [r["rank"] for r in s["per_rank"]] == list(range(p))
    assert sum(r["shard_tokens"] for r in s["per_rank"]) == len(c.train)
    assert s["seconds"] > 0 and s["sample"]
    cfg = s["config"]  # the sample drawn from the sharded model is the one-process sample
    assert s["sample"] == [c.vocab.decode(x) for x in ref.sample(
        3, max_len=cfg["sample_chars"], temperature=0.8, seed=cfg["seed"])]
    assert s["discounts"] == [list(d) for d in ref.discounts]
    assert "validation: ppl" in proc.stdout and "communication per rank" in proc.stdout
    if p == 2:
        assert "(shuffle windows) mpi alltoallv" in proc.stdout
        assert "(continuation 1-grams) mpi allreduce" in proc.stdout
        assert "(continuation 2-grams) mpi alltoallv" in proc.stdout
        assert "(query 2-grams) mpi alltoallv" in proc.stdout  # validation, sharded
        assert "[r1]" in proc.stdout
    ppl = run_mpi(1, ["-m", "minipar.ngram", "ppl", str(out / "model.npz"), "builtin:valid"])
    assert "ppl" in ppl.stdout


def _messy_file(path, lines):
    """Lines with what normalisation must undo: blank lines, CRLF, tabs, runs of spaces,
    U+2028 inside a line (a line break), a byte-order mark."""
    text = "\ufeff" + "\r\n".join(
        (f"  {ln}\t " if i % 7 == 0 else ln) + ("\n\n" if i % 11 == 0 else "")
        + (" and\u2028 more" if i % 13 == 0 else "") for i, ln in enumerate(lines))
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.mpi
@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_train_word_file_read_in_byte_ranges_equals_one_process(p, tmp_path):
    """--tokens word on a file: each rank reads its byte range and splits its own lines
    by their index in the whole file; model, header and perplexity are load_corpus's."""
    data = _messy_file(tmp_path / "data.txt", builtin_text().splitlines()[:2500])
    valid = _messy_file(tmp_path / "valid.txt", builtin_text().splitlines()[2500:2700])
    for extra in ([], ["--valid", str(valid)]):
        out = tmp_path / f"run{len(extra)}"
        proc = run_mpi(p, ["-m", "minipar.train", "--model", "ngram", "--tokens", "word",
                           "--order", "3", "--data", str(data), "--out", str(out), *extra],
                       timeout=120)
        c = load_corpus(str(data), str(valid) if extra else None, tokens="word")
        ref = NGramModel.fit(c.train, c.vocab, 3, "kn")
        model = load_model(out / "model.npz")
        assert model.vocab == ref.vocab
        for k in range(3):
            assert np.array_equal(model.counts[k], ref.counts[k])
        s = json.loads((out / "summary.json").read_text())
        assert s["val_ppl"] == ref.perplexity(c.valid)["ppl"]
        assert f"data: {c.summary()}" in proc.stdout
        assert sum(r["shard_tokens"] for r in s["per_rank"]) == len(c.train)


@pytest.mark.mpi
def test_order_beyond_every_sentence_is_one_line_on_every_rank(tmp_path):
    proc = run_mpi(2, ["-m", "minipar.train", "--model", "ngram", "--tokens", "word",
                       "--order", "300", "--out", str(tmp_path / "r"), *SMALL],
                   timeout=60, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minipar: error: --order 300: no training")


def test_order_below_one_is_a_config_error(capsys):
    assert train.main(["--model", "ngram", "--order", "0"]) == 2
    assert "--order must be positive" in capsys.readouterr().err
    cfg = TrainConfig(model="ngram", order=0)  # bypassing the parser's check
    with pytest.raises(ConfigError, match="at least 1"):
        ngram_train.run_ngram(init(), cfg)


@pytest.fixture
def keep_signals():
    """train.main installs SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_one_rank_in_process_ml_run(tmp_path, capsys, monkeypatch, keep_signals):
    monkeypatch.chdir(tmp_path)
    rc = train.main(["--model", "ngram", "--tokens", "word", "--order", "2", "--smoothing",
                     "ml", "--out", "r", "--quiet", "--sample-chars", "0", *SMALL])
    assert rc == 0
    out = capsys.readouterr().out
    assert "validation: ppl inf" in out and "note: --smoothing ml" in out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["discounts"] is None and s["sample"] == [] and os.path.exists(s["model_file"])


def test_owner_hashes_the_context_deterministically():
    rows = np.array([[5, 7, 9], [5, 7, 2], [7, 5, 9], [0, 0, 0]], dtype=np.int32)
    o = NP.owner(rows, 4)
    assert o[0] == o[1]                                    # same context, same owner
    assert np.array_equal(o, NP.owner(rows.copy(), 4))
    assert NP.owner(np.array([[5]]), 7)[0] == NP.owner(np.array([[5, 1]]), 7)[0]
    assert o.tolist() == [0, 0, 0, 1]                      # pinned: a change is a new format
    spread = np.bincount(NP.owner(np.arange(4000)[:, None], 3), minlength=3)
    assert spread.min() > 1200                             # the low bits are mixed


@pytest.mark.parametrize("seed", range(6))
def test_discounts_from_counts_of_counts_match_kneser_ney(seed):
    rng = np.random.default_rng(seed)
    a = rng.geometric(0.3, size=500)
    if seed >= 4:  # no adjusted count of 3: t3 = 0 needs the fallback
        a = rng.integers(0 if seed == 5 else 1, 3, size=500)
    t = np.bincount(np.minimum(a[a > 0], 5), minlength=6)[:5]
    D, _ = estimate_discounts(a, 2)
    assert discounts_from_t(t, 2)[0] == D  # what the ranks compute from summed t
    if seed >= 4:
        assert D == FALLBACK


@pytest.mark.mpi
def test_ngram_fit_under_mpiexec_counts_on_the_ranks_and_writes_once(tmp_path):
    """The command itself, not only the trainer: same ARPA bytes, one report, one error."""
    text = tmp_path / "train.txt"
    text.write_text("".join(f"the cat {w} sat on the mat {i % 7}\n"
                            for i, w in enumerate(["big", "small", "red"] * 40)))
    args = ["-m", "minipar.ngram", "fit", str(text), "--order", "3", "--quiet"]
    run_mpi(1, args + ["--arpa", str(tmp_path / "one.arpa")], timeout=60)
    proc = run_mpi(3, args + ["--arpa", str(tmp_path / "three.arpa"),
                              "--out", str(tmp_path / "three.npz")], timeout=60)
    assert (tmp_path / "one.arpa").read_bytes() == (tmp_path / "three.arpa").read_bytes()
    assert proc.stdout.count("trained 3-gram") == 1 and (tmp_path / "three.npz").exists()
    bad = run_mpi(2, ["-m", "minipar.ngram", "fit", str(tmp_path / "missing.txt")],
                  timeout=60, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr

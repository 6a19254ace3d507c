"""``python -m minipar.generate RUN_DIR``: neural runs from their checkpoint, N-gram runs from
model.npz, and one clear line for a run directory that is missing, empty or corrupt."""

import json
import shutil
import subprocess
import sys

import pytest
from mpiutil import ROOT

from minipar import generate as G
from minipar.training import saved_run
from minipar.data import load_corpus
from minipar.core.errors import CheckpointError, ConfigError, DataError
from minipar.models.ngram_lm import NGramModel

TINY = ["--max-chars", "20000", "--steps", "2", "--embed", "8", "--hidden", "16",
        "--sample-chars", "40", "--seed", "3", "--quiet"]


def _train(out, *args):
    subprocess.run([sys.executable, "-m", "minipar.train", "--out", str(out), *args],
                   check=True, capture_output=True, text=True, timeout=120, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {"lstm": _train(base / "lstm", "--model", "lstm", "--seq-len", "16", *TINY),
            "mlp": _train(base / "mlp", "--model", "mlp", "--context", "3", *TINY),
            "ngram": _train(base / "ngram", "--model", "ngram", "--order", "3", "--max-chars",
                            "20000", "--quiet")}


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_neural_run_rebuilds_the_trained_model(runs, kind):
    # The run sampled sample_chars tokens at T = 0.8 with --seed from the model it then
    # checkpointed: the rebuilt model must give the same text.
    summary = json.loads((runs[kind] / "summary.json").read_text())
    assert G.generate_text(str(runs[kind]), 40, 0.8, 3) == summary["sample"]
    a = G.generate_text(str(runs[kind]), 30, 1.0, 5, prompt="def ")
    assert a.startswith("def ") and a == G.generate_text(str(runs[kind]), 30, 1.0, 5, "def ")
    assert G.generate_text(str(runs[kind]), 30, 1.0, 6) != G.generate_text(str(runs[kind]), 30,
                                                                            1.0, 7)


def test_ngram_run_samples_from_model_npz(runs, capsys):
    assert G.main([str(runs["ngram"]), "--chars", "60", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert G.main([str(runs["ngram"]), "--chars", "60", "--seed", "1"]) == 0
    assert capsys.readouterr().out == first and first.strip()
    text = G.generate_text(str(runs["ngram"] / "model.npz"), 60, 0.0, 0, prompt="import ")
    assert text.startswith("import ")
    # a char model: the text after the prompt has 60 tokens, each a character or a line end
    assert "<unk>" not in text and len(text) == len("import ") + 60


def test_ngram_text_follows_the_current_sentence():
    c = load_corpus(None, tokens="word", max_chars=20000)
    model = NGramModel.fit(c.train, c.vocab, 3, "ml")  # zero-probability rows are common
    text = saved_run.ngram_text(model, 200, temperature=1.0, seed=2)
    assert "<unk>" not in text and text == saved_run.ngram_text(model, 200, 1.0, 2)
    greedy = saved_run.ngram_text(model, 20, temperature=0.0)
    sents = model.sample(1, max_len=19, temperature=0.0)
    assert greedy.startswith(c.vocab.decode(sents[0]))  # the same arg-max path as sample()


def test_missing_empty_and_corrupt_runs_are_one_line(runs, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="no such run directory"):
        G.generate_text(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a run directory"):
        G.generate_text(str(tmp_path / "empty"))
    bad = tmp_path / "badngram"
    bad.mkdir()
    (bad / "model.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable minipar N-gram model"):
        G.generate_text(str(bad))
    ck = tmp_path / "badlstm"
    shutil.copytree(runs["lstm"], ck)
    params = next(ck.glob("checkpoint/step-*/params.npz"))
    params.write_bytes(params.read_bytes()[:-10])
    assert G.main([str(ck)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum mismatch" in err[0]
    (ck / "checkpoint" / "LATEST").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        G.generate_text(str(ck))


def test_bad_options(runs, capsys):
    with pytest.raises(ConfigError, match="--chars"):
        G.generate_text(str(runs["ngram"]), chars=0)
    assert G.main([str(runs["ngram"]), "--temperature", "-1"]) == 2
    assert "--temperature must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        G.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "RUN_DIR" in out and "--temperature" in out and "checkpoint" in out


def test_generate_module_runs_as_a_command(runs):
    proc = subprocess.run([sys.executable, "-m", "minipar.generate", str(runs["ngram"]),
                           "--chars", "20", "--temperature", "0"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() and not proc.stderr

"""An option given where it has no effect gets a note at the start of the run, not silence
(and not an error: one TOML file may serve several models)."""

import pytest

from minipar.training.config import parse_args
from mpiutil import run_mpi


@pytest.mark.parametrize("argv, flagged", [
    (["--model", "ngram", "--hidden", "64", "--lr", "0.1", "--order", "3"], ["hidden", "lr"]),
    (["--model", "ngram", "--beta1", "0.8"], ["beta1"]),
    (["--sync", "ps", "--overlap", "--allreduce", "tree"], ["overlap", "allreduce"]),
    (["--average-every", "3"], ["average-every"]),
    (["--sync", "average", "--average-every", "3", "--allreduce", "rd"], []),
    (["--shard-weights", "2,1"], ["shard-weights"]),
    (["--scheduler", "lpt"], ["scheduler"]),
    (["--model", "classifier", "--scheduler", "lpt", "--layers", "2"], []),
    (["--model", "mlp", "--seq-len", "10", "--tie-weights", "--context", "3"],
     ["seq-len", "tie-weights"]),
    ([], []),
])
def test_options_without_effect_are_named(argv, flagged):
    notes = parse_args(argv).notes
    assert [n.split()[0] for n in notes] == [f"--{f}" for f in flagged], notes
    assert all(" has no effect here: it is for " in n for n in notes)


@pytest.mark.mpi
def test_a_toml_file_counts_as_given_and_a_resumed_run_does_not(tmp_path):
    (tmp_path / "run.toml").write_text("overlap = true\nsync = \"ps\"\n")
    assert [n.split()[0] for n in parse_args(["--config", str(tmp_path / "run.toml")]).notes] \
        == ["--overlap"]
    run = str(tmp_path / "run")  # a run with the same options, then resumed: said already
    run_mpi(1, ["-m", "minipar.train", "--config", str(tmp_path / "run.toml"), "--steps", "1",
                "--max-chars", "5000", "--hidden", "8", "--embed", "4", "--batch-size", "4",
                "--seq-len", "8", "--sample-chars", "0", "--quiet", "--out", run], timeout=60)
    assert parse_args(["--resume", run, "--steps", "2"]).notes == []


@pytest.mark.mpi
def test_the_run_says_it_once(tmp_path):
    out = run_mpi(2, ["-m", "minipar.train", "--model", "ngram", "--order", "3", "--hidden",
                      "8", "--max-chars", "5000", "--sample-chars", "0", "--out",
                      str(tmp_path / "r")], timeout=60).stdout
    assert out.count("note: --hidden has no effect here: it is for the neural models") == 1

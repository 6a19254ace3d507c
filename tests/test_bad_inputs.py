"""Everything a user can get wrong, each run as ``mpiexec -n 4 python -m minipar.train``.

Every case must end within 30 s with a non-zero status and exactly one line on stderr,
``minipar: error: ...`` (printed once, by rank 0), naming the problem, and no traceback.
Add a row to ``CASES`` for each new mistake users make.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import time

import pytest

from mpiutil import run_mpi

TINY = ["--max-chars", "3000", "--hidden", "8", "--embed", "4", "--seq-len", "5",
        "--batch-size", "4", "--steps", "3", "--sample-chars", "0", "--quiet"]

# (id, extra arguments, environment, text the one error line must contain).
# "{d}" in an argument is the directory of files made by the ``files`` fixture.
CASES = [
    ("missing-file", ["--data", "{d}/nope.txt"], None, "nope.txt: data file not found"),
    ("empty-file", ["--data", "{d}/empty.txt"], None, "data file is empty"),
    ("whitespace-file", ["--data", "{d}/blank.txt"], None, "data file is empty"),
    ("non-utf8", ["--data", "{d}/latin1.txt"], None, "not UTF-8 text (bad byte 0xe9"),
    ("directory-as-data", ["--data", "{d}"], None, "is a directory"),
    ("too-few-lines", ["--data", "{d}/oneline.txt"], None, "too few to split"),
    ("shorter-than-a-batch", ["--data", "{d}/short.txt", "--seq-len", "64"], None,
     "too few for --batch 4 x --seq 64"),
    ("mlp-shorter-than-a-batch", ["--data", "{d}/short.txt", "--model", "mlp",
                                  "--batch-size", "5000"], None, "fewer than one --batch"),
    ("missing-valid-file", ["--valid", "{d}/nope.txt"], None, "validation file not found"),
    ("unknown-option", ["--bogus"], None, "unrecognized arguments: --bogus"),
    ("bad-choice", ["--sync", "sometimes"], None, "argument --sync: invalid choice"),
    ("not-a-number", ["--steps", "many"], None, "argument --steps: invalid int value"),
    ("negative-size", ["--hidden", "-3"], None, "--hidden must be positive, got -3"),
    ("zero-steps", ["--steps", "0"], None, "--steps must be positive, got 0"),
    ("zero-batch", ["--batch-size", "0"], None, "--batch-size must be positive"),
    ("negative-lr", ["--lr", "-0.1"], None, "--lr must be positive"),
    ("dropout-one", ["--dropout", "1"], None, "--dropout must be in [0, 1)"),
    ("ngram-order-0", ["--model", "ngram", "--order", "0"], None, "--order must be positive"),
    ("context-0", ["--model", "mlp", "--context", "0"], None, "--context must be positive"),
    ("batch-below-ranks", ["--batch-size", "2"], None, "smaller than the 4 ranks"),
    ("more-ranks-than-examples", ["--model", "classifier", "--data", "{d}/three.tsv",
                                  "--valid", "{d}/three.tsv"], None,
     "only 3 rows (examples or streams) for 4 ranks"),
    ("shard-weights-count", ["--shard", "weighted", "--shard-weights", "1,2"], None,
     "--shard-weights has 2 entries for 4 ranks"),
    ("unknown-allreduce", ["--allreduce", "bogus"], None, "unknown allreduce 'bogus'"),
    ("overlap-shm", ["--allreduce", "shm", "--overlap"], None, "overlap works with the mpi, ring"),
    ("trace-steps-backwards", ["--trace", "--trace-steps", "7-5"], None,
     "--trace-steps must be a step or a range of steps such as 5 or 5-7, got '7-5'"),
    ("config-missing", ["--config", "{d}/nope.toml"], None, "config file not found"),
    ("config-not-toml", ["--config", "{d}/broken.toml"], None, "not valid TOML"),
    ("config-wrong-key", ["--config", "{d}/key.toml"], None, "unknown key 'stepz'"),
    ("config-wrong-type", ["--config", "{d}/type.toml"], None,
     "steps must be int, got str 'three'"),
    ("diverging-lr", ["--lr", "1e6", "--steps", "6"], None, "diverged at step"),
    ("resume-nothing", ["--resume", "{d}/nope"], None, "no such run directory"),
    ("resume-not-a-run", ["--resume", "{d}"], None, "neither a run directory"),
    ("checkpoint-other-model", ["--resume", "{d}/run", "--model", "mlp"], None,
     "checkpoint of a 'lstm' model, not 'mlp'"),
    ("checkpoint-other-size", ["--resume", "{d}/run", "--hidden", "16"], None,
     "state does not fit this model"),
    ("checkpoint-other-vocab", ["--resume", "{d}/run", "--data", "{d}/short.txt"], None,
     "vocabulary differs"),
    ("checkpoint-truncated", ["--resume", "{d}/truncated"], None,
     "params.npz: checksum mismatch (truncated or corrupted)"),
    ("checkpoint-meta-cut", ["--resume", "{d}/metacut"], None, "corrupted or truncated"),
    ("checkpoint-meta-edited", ["--resume", "{d}/edited"], None,
     "meta.json: checksum mismatch"),
    ("bad-fault-spec", [], {"MINIPAR_FAULT": "explode:rank=1"}, "unknown fault 'explode'"),
    ("out-is-a-file", ["--out", "{d}/oneline.txt"], None,
     "cannot make the run directory here (File exists)"),
    ("ngram-out-under-a-file", ["--model", "ngram", "--out", "{d}/oneline.txt/run"], None,
     "cannot make the run directory here (Not a directory)"),
]
if importlib.util.find_spec("cupy") is None:
    CASES.append(("cuda-without-cupy", ["--device", "cuda"], None, "needs CuPy"))
    CASES.append(("cuda-env-without-cupy", [], {"MINIPAR_DEVICE": "cuda"},
                  "MINIPAR_DEVICE=cuda: device 'cuda' needs CuPy"))


def _checkpoint_file(run_dir: str, name: str) -> str:
    return glob.glob(os.path.join(run_dir, "checkpoint", "step-*", name))[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.txt").write_text(" \n\t\n")
    (d / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 30)
    (d / "oneline.txt").write_text("only one line here\n")
    (d / "short.txt").write_text("ab cd ef.\n" * 25)
    (d / "three.tsv").write_text("pos\tgood film\nneg\tbad film\npos\tgreat film\n")
    (d / "broken.toml").write_text("steps = = 3\n")
    (d / "key.toml").write_text("stepz = 3\n")
    (d / "type.toml").write_text('steps = "three"\n')
    run_mpi(1, ["-m", "minipar.train", *TINY, "--out", str(d / "run")], timeout=30)
    for name in ("truncated", "metacut", "edited"):
        shutil.copytree(d / "run", d / name)
    params = _checkpoint_file(str(d / "truncated"), "params.npz")
    data = open(params, "rb").read()
    open(params, "wb").write(data[: len(data) // 2])
    meta = _checkpoint_file(str(d / "metacut"), "meta.json")
    text = open(meta).read()
    open(meta, "w").write(text[: len(text) // 2])
    meta = _checkpoint_file(str(d / "edited"), "meta.json")
    body = json.load(open(meta))
    body["step"] += 1  # valid JSON, wrong content
    open(meta, "w").write(json.dumps(body))
    return d


@pytest.mark.mpi
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(files, tmp_path, case):
    _, extra, env, expect = case
    argv = [a.replace("{d}", str(files)) for a in extra]
    t0 = time.monotonic()
    proc = run_mpi(4, ["-m", "minipar.train", *TINY, "--out", str(tmp_path / "out"), *argv],
                   timeout=30, env=env, check=False)
    took = time.monotonic() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("minipar: error: "), lines[0]
    assert expect in lines[0], lines[0]
    assert took < 30


@pytest.mark.mpi
def test_debug_shows_the_traceback(files, tmp_path):
    proc = run_mpi(2, ["-m", "minipar.train", *TINY, "--data", str(files / "nope.txt"),
                       "--debug", "--out", str(tmp_path / "o")], timeout=30, check=False)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("minipar: error: ")
    assert proc.stderr.count("minipar: error:") == 1  # still once, by rank 0

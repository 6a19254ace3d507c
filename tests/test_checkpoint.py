"""Checkpoints: round trip, every corruption refused, crashes at any point leave a good one."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minipar.training import checkpoint as ckpt
from minipar.core.errors import CheckpointError

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _save(run_dir, step, scale=1.0, **meta):
    params = {"w": np.arange(6.0).reshape(2, 3) * scale, "b": np.ones(3, np.float32)}
    optim = {"t": step, "m": [np.zeros((2, 3)), np.zeros(3)], "v": [np.ones((2, 3)),
                                                                   np.ones(3)]}
    return ckpt.save(str(run_dir), step, params, optim, dict(meta, model="lstm"),
                     {"r0/h": np.full((1, 2, 3), 0.5)})


dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8])


@FAST
@given(st.dictionaries(st.text("abcxyz./_", min_size=1, max_size=8),
                       hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3,
                                                           max_side=4)),
                       min_size=1, max_size=4),
       st.integers(0, 10**6))
def test_round_trip_is_exact(tmp_path, arrays, step):
    run = tmp_path / f"r{step}"
    optim = {"t": step, "m": list(arrays.values())}
    ckpt.save(str(run), step, arrays, optim, {"model": "x", "rng": [{"n": 2**100}]})
    params, opt, meta, ranks = ckpt.load(str(run))
    assert meta["step"] == step and meta["rng"] == [{"n": 2**100}] and ranks == {}
    for k, a in arrays.items():
        assert params[k].dtype == a.dtype and np.array_equal(params[k], a, equal_nan=True)
    assert opt["t"] == step and len(opt["m"]) == len(arrays)


@FAST
@given(st.sampled_from(["params.npz", "optim.npz", "ranks.npz", "meta.json"]),
       st.floats(0, 1, exclude_max=True), st.integers(1, 255))
def test_any_changed_byte_is_refused(tmp_path, name, where, xor):
    run = tmp_path / "run"
    path = os.path.join(_save(run, 5), name)
    data = bytearray(open(path, "rb").read())
    data[int(where * len(data))] ^= xor
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        ckpt.load(str(run))
    shutil.rmtree(run)


def test_truncation_and_missing_files_are_refused_naming_the_previous(tmp_path):
    _save(tmp_path, 1)
    path = _save(tmp_path, 2)
    data = open(os.path.join(path, "optim.npz"), "rb").read()
    open(os.path.join(path, "optim.npz"), "wb").write(data[:-10])
    with pytest.raises(CheckpointError, match=r"optim\.npz: checksum mismatch \(truncated or "
                       r"corrupted\); the previous one is --resume .*step-00000001"):
        ckpt.load(str(tmp_path))
    first = str(tmp_path / "checkpoint" / "step-00000001")
    os.remove(os.path.join(first, "ranks.npz"))
    with pytest.raises(CheckpointError, match="ranks.npz: missing from the checkpoint"):
        ckpt.load(first)
    with pytest.raises(CheckpointError, match="neither a run directory"):
        ckpt.load(str(tmp_path / "checkpoint"))


def test_unknown_format_is_refused(tmp_path):
    path = _save(tmp_path, 3)
    meta = json.load(open(os.path.join(path, "meta.json")))
    meta["format"] = "minipar-checkpoint-0"
    open(os.path.join(path, "meta.json"), "w").write(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'minipar-checkpoint-0'"):
        ckpt.load(str(tmp_path))


def test_keeps_two_and_resolves_run_or_checkpoint_directories(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    root = tmp_path / "checkpoint"
    assert sorted(os.listdir(root)) == ["LATEST", "step-00000002", "step-00000003"]
    assert ckpt.resolve(str(tmp_path)) == (str(root / "step-00000003"), str(tmp_path))
    assert ckpt.resolve(str(root / "step-00000002")) == (str(root / "step-00000002"),
                                                         str(tmp_path))
    with pytest.raises(CheckpointError, match="no such run directory"):
        ckpt.resolve(str(tmp_path / "nope"))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 4)
    real = ckpt.atomic_write

    def dies_on_meta(path, data):
        if path.endswith("meta.json"):
            raise OSError("disk full")  # the process dies here: no rename happens
        real(path, data)
    monkeypatch.setattr(ckpt, "atomic_write", dies_on_meta)
    with pytest.raises(OSError):
        _save(tmp_path, 6, scale=2.0)
    monkeypatch.setattr(ckpt, "atomic_write", real)
    params, _, meta, _ = ckpt.load(str(tmp_path))
    assert meta["step"] == 4 and params["w"][1, 2] == 5.0
    _save(tmp_path, 8)  # the next good save clears the leftovers
    assert not [d for d in os.listdir(tmp_path / "checkpoint") if ".tmp-" in d]


def test_saving_the_same_step_again_never_loses_it(tmp_path, monkeypatch):
    _save(tmp_path, 5)
    real = os.replace

    def dies_before_the_new_one_is_in(src, dst):
        if ".tmp-" in os.path.basename(src) and os.path.basename(dst) == "step-00000005":
            raise OSError("killed")  # the old step 5 was just moved aside
        real(src, dst)
    monkeypatch.setattr(os, "replace", dies_before_the_new_one_is_in)
    with pytest.raises(OSError):
        _save(tmp_path, 5, scale=3.0)
    monkeypatch.setattr(os, "replace", real)
    params, _, meta, _ = ckpt.load(str(tmp_path))  # found aside, complete
    assert meta["step"] == 5 and params["w"][1, 2] == 5.0


def test_latest_falls_back_when_latest_names_nothing(tmp_path):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    (tmp_path / "checkpoint" / "LATEST").write_text("step-00000009\n")
    assert ckpt.load(str(tmp_path))[2]["step"] == 2
    for d in (tmp_path / "checkpoint").glob("step-*"):
        shutil.rmtree(d)
    with pytest.raises(CheckpointError, match="names 'step-00000009', which is not a "
                                              "checkpoint"):
        ckpt.load(str(tmp_path))

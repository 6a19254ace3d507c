"""Sharding: every policy and mode, as pure functions every rank computes alike."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.core.errors import ConfigError
from minipar.training.shard import Sharder, block_bounds, local_batches, weighted_bounds


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 50), st.integers(1, 7), st.sampled_from(["contiguous", "strided"]),
       st.booleans(), st.integers(0, 5))
def test_uneven_keeps_every_unit_exactly_once(n, p, mode, shuffle, epoch):
    s = Sharder(n, p, mode, "uneven", shuffle=shuffle, seed=3, epoch=epoch)
    shards = s.all_shards()
    assert len(shards) == p
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))
    sizes = [len(x) for x in shards]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 7))
def test_drop_and_pad_equalise(n, p):
    drop = Sharder(n, p, "contiguous", "drop").all_shards()
    pad = Sharder(n, p, "contiguous", "pad").all_shards()
    assert len({len(x) for x in drop}) == 1 and len(drop[0]) == n // p
    assert len({len(x) for x in pad}) == 1 and len(pad[0]) == -(-n // p)
    assert set(np.concatenate(pad).tolist()) == set(range(n))


def test_pad_repeats_own_units_cyclically():
    shards = Sharder(5, 2, "contiguous", "pad").all_shards()
    assert shards[0].tolist() == [0, 1, 2] and shards[1].tolist() == [3, 4, 3]


def test_block_and_weighted_bounds():
    assert block_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert weighted_bounds(9, [2, 1]) == [(0, 6), (6, 9)]
    b = weighted_bounds(10, [1, 1, 1])
    assert b[-1][1] == 10 and sorted(hi - lo for lo, hi in b) == [3, 3, 4]


def test_shuffle_is_the_same_for_every_rank_and_changes_with_epoch():
    a = Sharder(20, 4, "strided", shuffle=True, seed=7)
    b = Sharder(20, 4, "strided", shuffle=True, seed=7)
    assert all((x == y).all() for x, y in zip(a.all_shards(), b.all_shards()))
    before = a.shard(1).copy()
    a.set_epoch(1)
    assert not np.array_equal(before, a.shard(1))


def test_balanced_evens_out_sizes():
    sizes = np.array([50, 1, 1, 1, 1, 1, 40, 2, 2, 2])
    bal = Sharder(10, 2, "balanced", weights=sizes)
    blk = Sharder(10, 2, "contiguous")
    assert bal.imbalance(sizes)["ratio"] < blk.imbalance(sizes)["ratio"]
    assert sorted(np.concatenate(bal.all_shards()).tolist()) == list(range(10))


def test_local_batches_run_out_with_empty_batches():
    got = [b.tolist() for b in local_batches(np.arange(5), 2, 4)]
    assert got == [[0, 1], [2, 3], [4], []]


@pytest.mark.parametrize("kw", [dict(mode="diagonal"), dict(policy="trim"), dict(size=0),
                                dict(mode="weighted"), dict(mode="weighted", weights=[1]),
                                dict(mode="balanced", weights=[1, 2])])
def test_bad_settings_are_config_errors(kw):
    args = dict(n=4, size=2)
    args.update(kw)
    with pytest.raises(ConfigError):
        Sharder(**args)


def test_balanced_uses_a_plugged_in_scheduler():
    from minipar.planning.policies import get_scheduler
    sizes = np.array([5, 1, 1, 1, 1, 1])
    block = Sharder(6, 2, "balanced", weights=sizes, scheduler=get_scheduler("block"))
    assert [s.tolist() for s in block.all_shards()] == [[0, 1, 2], [3, 4, 5]]
    lpt = Sharder(6, 2, "balanced", weights=sizes)
    assert [s.tolist() for s in lpt.all_shards()] == [[0], [1, 2, 3, 4, 5]]
    with pytest.raises(ConfigError, match="no function"):
        get_scheduler("minipar.training.shard:nothing")


def test_the_classifier_balances_padded_time_unless_told_otherwise(tmp_path):
    from minipar.comm.communicator import init
    from minipar.training.config import parse_args
    from minipar.training.run import setup

    def cfg_of(*argv):
        run = setup(init(), parse_args([*argv, "--steps", "1", "--quiet", "--out",
                                        str(tmp_path / str(len(list(tmp_path.iterdir()))))]))
        return run.cfg.shard, run.cfg.scheduler, run.scheduler is not None
    assert cfg_of("--model", "classifier") == ("balanced", "padded", True)
    assert cfg_of("--model", "classifier", "--scheduler", "lpt") == ("balanced", "lpt", True)
    assert cfg_of("--model", "classifier", "--shard", "contiguous")[::2] == ("contiguous", False)
    assert cfg_of("--model", "lstm", "--max-chars", "5000")[::2] == ("contiguous", False)

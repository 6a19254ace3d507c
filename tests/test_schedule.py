"""Static scheduler: policies, bounds, LPT against the brute-force optimum, determinism."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.planning.actions import PlanError
from minipar.planning.policies import (assign_grid, balanced_shards, block, list_schedule, lpt,
                                       make_plan, padded, round_robin)
from minipar.planning.plan import critical_path, lower_bound
from minipar.planning.simulate import simulate
from minipar.data.synthetic import heavy_tail
from minipar.schedule import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def brute_force_optimum(costs, p):
    """Smallest makespan over all p^(n-1) assignments (task 0 fixed on rank 0: symmetry)."""
    c = np.asarray(costs, dtype=float)
    if len(c) == 0:
        return 0.0
    assign = np.array(list(itertools.product(range(p), repeat=len(c) - 1)), dtype=int)
    assign = np.concatenate([np.zeros((len(assign), 1), dtype=int), assign], axis=1)
    loads = np.stack([(assign == r) @ c for r in range(p)], axis=1)
    return float(loads.max(axis=1).min())


costs_st = st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(costs=costs_st, p=st.integers(min_value=2, max_value=3))
def test_lpt_within_graham_bound_of_optimum(costs, p):
    opt = brute_force_optimum(costs, p)
    plan = lpt(costs, p)
    assert plan.makespan <= (4 / 3 - 1 / (3 * p)) * opt + 1e-9
    assert plan.makespan >= opt - 1e-9 >= plan.lower_bound - 1e-9
    for other in (block(costs, p), round_robin(costs, p)):
        assert other.makespan >= opt - 1e-9


def padded_time(costs, ranks_tasks):
    """max over ranks of (rows) x (longest row): rows padded to the longest on their rank."""
    return max((len(ts) * max(costs[t] for t in ts) if ts else 0) for ts in ranks_tasks)


@settings(max_examples=80, deadline=None)
@given(costs=costs_st, p=st.integers(min_value=2, max_value=3))
def test_padded_is_the_optimum_of_padded_time(costs, p):
    best = min(padded_time(costs, [[t for t in range(len(costs)) if a[t] == r] for r in range(p)])
               for a in itertools.product(range(p), repeat=len(costs)))
    plan = padded(costs, p)
    got = [plan.tasks(r) for r in range(p)]
    assert sorted(t for ts in got for t in ts) == list(range(len(costs)))
    assert padded_time(costs, got) == best
    for other in (lpt(costs, p), block(costs, p)):
        assert padded_time(costs, [other.tasks(r) for r in range(p)]) >= best
    if len(costs) >= p:  # every rank gets rows
        assert all(got)


def test_padded_gives_the_longest_row_fewer_companions():
    costs = [100, 90, 50, 50, 50, 50, 50, 50]
    plan = padded(costs, 2)
    assert [plan.tasks(r) for r in range(2)] == [[0, 1, 2], [3, 4, 5, 6, 7]]
    assert padded_time(costs, [plan.tasks(0), plan.tasks(1)]) == 300  # 3 x 100, 5 x 50
    assert padded_time(costs, [block(costs, 2).tasks(r) for r in range(2)]) == 400
    assert padded(costs, 2).tasks(0) == plan.tasks(0)  # the same plan every time


@pytest.mark.parametrize("p", [2, 3, 4])
def test_graham_bound_is_tight(p):
    # 2p+1 jobs: two each of 2p-1 .. p+1, three of p. LPT gives 4p-1, the optimum 3p.
    costs = [c for c in range(2 * p - 1, p, -1) for _ in range(2)] + [p] * 3
    plan = lpt(costs, p)
    assert plan.makespan == 4 * p - 1
    if p <= 3:
        assert brute_force_optimum(costs, p) == 3 * p
    assert plan.makespan / (3 * p) == pytest.approx(4 / 3 - 1 / (3 * p))


def test_policies_assign_every_task_once_and_report_bounds():
    costs = [5, 3, 8, 2, 7, 4, 1, 6, 9, 2]
    for policy in ("block", "round_robin", "lpt", "list"):
        plan = make_plan(costs, 3, policy)
        tasks = sorted(t for r in range(3) for t in plan.tasks(r))
        assert tasks == list(range(len(costs)))
        assert plan.lower_bound == max(sum(costs) / 3, max(costs))
        assert plan.makespan >= plan.lower_bound
        assert plan.makespan == max(plan.loads)
        assert "lower bound" in plan.summary() and "imbalance" in plan.summary()
    assert [len(block(costs, 3).tasks(r)) for r in range(3)] == [3, 3, 4]
    assert round_robin(costs, 3).tasks(1) == [1, 4, 7]
    assert lpt([1, 1, 1, 1], 2).imbalance == 0.0


def test_lpt_ties_and_empty_ranks():
    plan = lpt([2.0] * 5, 3)
    assert [plan.tasks(r) for r in range(3)] == [[0, 3], [1, 4], [2]]
    plan = lpt([4.0], 3)
    assert plan.tasks(0) == [0] and plan.tasks(2) == [] and plan.makespan == 4.0


def test_bad_inputs_are_plan_errors():
    with pytest.raises(PlanError):
        lpt([1, -2], 2)
    with pytest.raises(PlanError):
        lpt([1, 2], 0)
    with pytest.raises(PlanError, match="cycle"):
        critical_path([1, 1, 1], {0: [2], 1: [0], 2: [1]})
    with pytest.raises(PlanError, match="unknown policy"):
        make_plan([1], 2, "random")


def test_critical_path_and_lower_bound():
    costs = [3, 2, 4, 1, 5, 2, 6]
    deps = {2: [0, 1], 3: [2], 4: [2], 5: [3, 4], 6: [0]}
    length, path = critical_path(costs, deps)
    assert (length, path) == (14, [0, 2, 4, 5])
    assert lower_bound(costs, 2, deps) == 14
    assert lower_bound(costs, 1, deps) == sum(costs)


dag_st = st.integers(min_value=1, max_value=9).flatmap(lambda n: st.tuples(
    st.lists(st.integers(min_value=0, max_value=9), min_size=n, max_size=n),
    st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n),
    st.integers(min_value=1, max_value=3)))


@settings(max_examples=60, deadline=None)
@given(dag_st)
def test_list_schedule_is_valid_and_cannot_deadlock(case):
    costs, edges, p = case
    deps = {}
    for u, v in edges:
        if u < v:  # edges from lower to higher id: always acyclic
            deps.setdefault(v, []).append(u)
    plan = list_schedule(costs, deps, p, nbytes=8)
    assert sorted(t for r in range(p) for t in plan.tasks(r)) == list(range(len(costs)))
    simulate(plan, mode="rendezvous")  # raises on deadlock
    eager = simulate(plan, mode="eager")
    assert plan.lower_bound - 1e-9 <= eager.makespan <= sum(costs) + 1e-9
    owner = plan.owner
    for v, us in deps.items():  # every cross-rank input is received before it is used
        for u in us:
            if owner[u] != owner[v]:
                acts = plan.actions[owner[v]]
                i_recv = next(i for i, a in enumerate(acts) if a.kind == "recv" and a.tag == u)
                i_use = next(i for i, a in enumerate(acts) if a.kind == "compute" and a.task == v)
                assert i_recv < i_use


def test_balanced_shards_beat_block_on_heavy_tail():
    sizes = heavy_tail(200, seed=3)
    shards = balanced_shards(sizes, 4)
    assert sorted(i for s in shards for i in s) == list(range(200))
    assert all(s == sorted(s) for s in shards)
    assert lpt(sizes, 4).makespan <= block(sizes, 4).makespan
    assert lpt(sizes, 4).imbalance < block(sizes, 4).imbalance


def test_assign_grid_with_cost_function():
    jobs = [{"order": n, "hidden": h} for n in (2, 3, 4) for h in (32, 64)]
    ranks = assign_grid(jobs, 3, costs=lambda j: j["order"] * j["hidden"])
    assert sorted(i for r in ranks for i in r) == list(range(6))
    assert assign_grid(["a", "b", "c"], 2) == [[0, 2], [1]]


_PLAN = ("from minipar.planning.policies import lpt, list_schedule; "
         "from minipar.data.synthetic import heavy_tail; import hashlib, os; "
         "c = heavy_tail(50, seed=1); "
         "d = {v: [v // 2, v // 3] for v in range(2, 50)}; "
         "s = repr(lpt(c, 4).actions) + repr(list_schedule(c, d, 3).actions); "
         "h = hashlib.sha256(s.encode()).hexdigest()")
_DIGEST = _PLAN + "; print(os.environ.get('PMI_RANK', '-'), h)"


def test_plans_are_identical_across_processes():
    # Different hash seeds change set/dict iteration order; the plan must not depend on it.
    outs = set()
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True,
                             timeout=60, env=env, check=True).stdout
        outs.add(out.split()[1])
    assert len(outs) == 1


@pytest.mark.mpi
def test_plans_are_identical_across_ranks(tmp_path):
    from mpiutil import run_code  # each rank computes its plan alone, no messages
    # each rank writes its own file: lines printed by several ranks may interleave
    run_code(3, _PLAN + f"; open(r'{tmp_path}/' + os.environ['PMI_RANK'], 'w').write(h)",
             timeout=60)
    digests = {(tmp_path / r).read_text() for r in ("0", "1", "2")}
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_cli_prints_plans(capsys, tmp_path):
    assert cli_main(["--heavy-tail", "20", "-p", "3", "--policy", "all"]) == 0
    out = capsys.readouterr().out
    assert out.count("lower bound") == 4 and "round_robin" in out
    png = tmp_path / "p.png"
    assert cli_main(["--pipeline", "1f1b", "--stages", "3", "--micro-batches", "4",
                     "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli_main(["--costs", "1,2", "--deps", "0:1;1:0"]) == 2
    assert "cycle" in capsys.readouterr().err

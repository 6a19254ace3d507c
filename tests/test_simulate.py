"""Dry-run simulator: deadlocks named, timelines predicted, pipeline plans accepted."""

import pytest

from minipar.planning.gantt import color_of, plot_compare, plot_plan
from minipar.planning.pipeline_plan import (bubble_fraction, gpipe, in_flight, one_f_one_b,
                                            pipeline_plan)
from minipar.planning.plan import Plan
from minipar.planning.actions import PlanError, compute, recv, send
from minipar.planning.simulate import DeadlockError, simulate, verify

MODES = ("rendezvous", "eager")


@pytest.mark.parametrize("mode", MODES)
def test_planted_deadlock_both_receive_first(mode):
    plan = [[compute(0, 1), recv(1, 0, 8), send(1, 0, 8)],
            [recv(0, 0, 8), send(0, 0, 8)]]
    with pytest.raises(DeadlockError) as err:
        simulate(plan, mode=mode)
    assert err.value.ranks == (0, 1)
    assert [(r, i) for r, i, _ in err.value.actions] == [(0, 1), (1, 0)]
    msg = str(err.value)
    assert "rank 0" in msg and "rank 1" in msg and "receive first" in msg
    # swapping one rank's order fixes it
    simulate([[compute(0, 1), recv(1, 0, 8), send(1, 0, 8)],
              [send(0, 0, 8), recv(0, 0, 8)]], mode=mode)


def test_both_send_first_deadlocks_only_without_buffering():
    plan = [[send(1, 0, 8), recv(1, 0, 8)], [send(0, 0, 8), recv(0, 0, 8)]]
    with pytest.raises(DeadlockError, match="both ranks send first"):
        verify(plan)
    assert simulate(plan, mode="eager").messages == 2


def test_deadlock_among_other_ranks_names_the_right_pair():
    ok = [send(1, 5, 4)], [recv(0, 5, 4)]
    bad = [recv(3, 1, 4), send(3, 2, 4)], [recv(2, 2, 4), send(2, 1, 4)]
    with pytest.raises(DeadlockError) as err:
        simulate([*ok, *bad])
    assert err.value.ranks == (2, 3)


def test_three_rank_cycle_and_wait_on_finished_rank():
    ring = [[recv(1), send(2)], [recv(2), send(0)], [recv(0), send(1)]]
    with pytest.raises(DeadlockError, match="cycle of 3 ranks"):
        simulate(ring)
    with pytest.raises(DeadlockError, match="rank 1 has finished") as err:
        simulate([[recv(1, 0, 4)], [compute(0, 1.0)]])
    assert err.value.ranks == (0, 1)


def test_message_errors():
    with pytest.raises(PlanError, match="never received"):
        simulate([[send(1, 3, 4)], []], mode="eager")
    with pytest.raises(PlanError, match="sizes differ"):
        simulate([[send(1, 0, 4)], [recv(0, 0, 8)]])
    with pytest.raises(PlanError, match="peer"):
        simulate([[send(0, 0, 4)]])
    with pytest.raises(PlanError, match="peer"):
        simulate([[send(5, 0, 4)], []])


@pytest.mark.parametrize("mode", MODES)
def test_timeline_follows_alpha_beta(mode):
    # rank 0 computes 1 s then sends 100 bytes: alpha 0.5 s, beta 0.01 s/byte -> 1.5 s
    plan = [[compute(0, 1.0), send(1, 0, 100)], [recv(0, 0, 100), compute(1, 2.0)]]
    res = simulate(plan, mode=mode, alpha=0.5, beta=0.01)
    assert res.makespan == pytest.approx(1.0 + 1.5 + 2.0)
    assert res.busy == [1.0, 2.0] and res.messages == 1 and res.nbytes == 100
    assert (1, 2.5, 4.5, "T1") in res.spans
    assert "makespan" in res.table()


def test_messages_match_in_order_per_tag():
    plan = [[send(1, 1, 4), send(1, 2, 4)], [recv(0, 2, 4), recv(0, 1, 4)]]
    with pytest.raises(DeadlockError, match="tags or the order"):
        simulate(plan)
    assert simulate(plan, mode="eager").messages == 2


@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("make", [gpipe, one_f_one_b])
def test_pipeline_plans_accepted_with_exact_bubble(stages, make):
    for micro in range(1, 9):
        for fwd, bwd in ((1.0, 1.0), (1.0, 2.0)):
            plan = make(stages, micro, fwd=fwd, bwd=bwd, act_bytes=64)
            for mode in MODES:
                res = simulate(plan, mode=mode)
                assert res.bubble == pytest.approx(bubble_fraction(stages, micro))
                assert res.makespan == pytest.approx((micro + stages - 1) * (fwd + bwd))
                assert res.makespan == pytest.approx(plan.lower_bound)
                assert res.messages == 2 * (stages - 1) * micro
            for s in range(stages):
                assert sorted(plan.tasks(s)) == sorted(list(range(micro)) * 2)


def test_one_f_one_b_keeps_fewer_micro_batches_in_flight():
    assert in_flight(gpipe(4, 8)) == [8, 8, 8, 8]
    assert in_flight(one_f_one_b(4, 8)) == [4, 3, 2, 1]
    assert in_flight(one_f_one_b(4, 2)) == [2, 2, 2, 1]


def test_naive_one_f_one_b_order_deadlocks_under_rendezvous():
    plan = one_f_one_b(3, 4, pair_exchange=False)
    with pytest.raises(DeadlockError, match="send first") as err:
        verify(plan)
    assert abs(err.value.ranks[0] - err.value.ranks[1]) == 1
    safe = one_f_one_b(3, 4)
    assert simulate(plan, mode="eager").makespan == simulate(safe).makespan


def test_uneven_stages_and_message_cost():
    plan = pipeline_plan("gpipe", 3, 4, fwd=[1, 2, 1], bwd=[2, 4, 2], act_bytes=1000)
    free = simulate(plan)
    paid = simulate(plan, alpha=0.1, beta=1e-4)
    assert free.makespan >= plan.lower_bound
    assert paid.makespan > free.makespan
    with pytest.raises(PlanError):
        pipeline_plan("zigzag", 2, 2)
    with pytest.raises(PlanError):
        gpipe(2, 2, fwd=[1, 2, 3])


def test_plan_makespan_and_summary_for_pipelines():
    plan = gpipe(2, 3)
    assert isinstance(plan, Plan) and plan.makespan == 12.0
    assert "gpipe" in plan.summary()


def test_gantt_pngs(tmp_path):
    res = simulate(one_f_one_b(3, 4), alpha=0.05)
    out = plot_plan(one_f_one_b(3, 4), tmp_path / "plan.png", alpha=0.05)
    assert out.read_bytes()[:4] == b"\x89PNG"
    measured = [(r, 1.1 * s, 1.2 * e, lab) for r, s, e, lab in res.spans]
    out = plot_compare(res.spans, measured, tmp_path / "cmp.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert color_of("F1") != color_of("B1") != color_of("send_act->1")

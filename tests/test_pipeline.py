"""Pipeline parallelism: stages match the one-process model, plans are checked before running."""

import json

import numpy as np
import pytest
from mpiutil import run_mpi

from minipar.core import backend
from minipar import pipeline as cli
from minipar.core.errors import ConfigError
from minipar.models.lstm_lm import LSTMLM
from minipar.comm.communicator import init
from minipar.training.pipeline_stages import (PipelineStage, check_against, measured_bubble,
                                              run_step, split_rows, stage_layers)
from minipar.planning.pipeline_plan import pipeline_plan

V, D, H = 11, 5, 6


def _model(layers, fused=True):
    backend.seed(3)
    return LSTMLM(V, D, H, num_layers=layers, fused=fused)


def _batch(seed, shape=(4, 5)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, shape), rng.integers(0, V, shape)


def test_layers_and_rows_split():
    assert [list(stage_layers(5, 3, s)) for s in range(3)] == [[0], [1, 2], [3, 4]]
    assert [list(stage_layers(3, 3, s)) for s in range(3)] == [[0], [1], [2]]
    with pytest.raises(ConfigError, match="at least 3 LSTM layers"):
        stage_layers(2, 3, 0)
    assert split_rows(6, 3) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    with pytest.raises(ConfigError, match="multiple of --micro-batches"):
        split_rows(5, 2)


@pytest.mark.parametrize("fused", [True, False])
def test_chained_stages_equal_one_process_over_two_windows(fused):
    """Three stages, each on its own copy of the model (as on three ranks), run by hand in
    GPipe order; losses and gradients match one process, also in the second window, whose
    state each stage carries per micro-batch."""
    with backend.dtype_scope("float64"):
        S, M = 3, 2
        models = [_model(4, fused) for _ in range(S)]
        stages = [PipelineStage(models[s], s, S) for s in range(S)]
        ref = _model(4, fused)
        ref_state = None
        for window in range(2):
            ids, y = _batch(window)
            rows, n = split_rows(4, M), ids.size
            loss = 0.0
            for m in range(M):
                x = ids[rows[m]]
                for st in stages:
                    x = st.forward_micro(m, x, y[rows[m]], n)
                loss += x
            for m in reversed(range(M)):
                g = None
                for st in reversed(stages):
                    g = st.backward_micro(m, g)
            ref.zero_grad()
            total, ref_state = ref.loss(ids, y, ref_state, reduction="sum")
            (total * (1.0 / n)).backward()
            ref_state = tuple(s.detach() for s in ref_state)
            assert loss == pytest.approx(total.item() / n, rel=1e-12)
            full = dict(ref.named_parameters())
            names = [name for st in stages for name, _ in st.named_parameters()]
            assert sorted(names) == sorted(full)  # every parameter on exactly one stage
            for st in stages:
                for name, p in st.named_parameters():
                    np.testing.assert_allclose(p.grad, full[name].grad, rtol=1e-10, atol=1e-14)
                st.zero_grad()


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_run_step_on_one_rank(schedule):
    with backend.dtype_scope("float64"):
        comm = init(trace=True)
        model = _model(2)
        stage = PipelineStage(model, 0, 1)
        ids, y = _batch(0, (6, 4))
        loss, spans = run_step(comm, stage, pipeline_plan(schedule, 1, 3), ids, y)
        err = check_against(model, stage, ids, y, loss)
        assert err["loss"] < 1e-12 and err["grad"] < 1e-12 and err["params"] == 9
        assert sorted(s[3] for s in spans) == ["B0", "B1", "B2", "F0", "F1", "F2"]
        names = [ev.op for ev in comm.tracer.events if ev.kind == "compute"]
        assert {"F0", "B2"} <= set(names)  # compute spans reach the trace


def test_measured_bubble_is_idle_share():
    spans = [(0, 0.0, 1.0, "F0"), (0, 3.0, 4.0, "B0"), (1, 1.0, 3.0, "F0"),
             (1, 0.0, 1.0, "recv_act<-0")]
    span, bubble = measured_bubble(spans, 2)
    assert span == 4.0 and bubble == pytest.approx(1 - 4.0 / 8.0)


def test_dry_run_prints_plan_and_refuses_deadlock(capsys):
    assert cli.main(["--dry-run", "--stages", "3", "--micro-batches", "4"]) == 0
    out = capsys.readouterr().out
    assert "no deadlock" in out and "33.3%" in out and "in flight per stage [3, 2, 1]" in out
    assert cli.main(["--dry-run", "--stages", "3", "--naive-order"]) == 2
    err = capsys.readouterr().err
    assert "refuses this plan: deadlock between ranks" in err and "both ranks send" in err


SMALL = ["--data", "synthetic", "--batch", "4", "--seq", "6", "--hidden", "6", "--embed", "5",
         "--dtype", "float64", "--check"]


@pytest.mark.mpi
def test_two_stages_gpipe_match_one_process_with_trace_and_gantt(tmp_path):
    trace, png = tmp_path / "t.json", tmp_path / "g.png"
    out = run_mpi(2, ["-m", "minipar.pipeline", "--schedule", "gpipe", "--micro-batches", "2",
                      "--steps", "2", "--trace", str(trace), "--gantt", str(png), *SMALL],
                  timeout=60).stdout
    assert "check vs one process" in out and ": ok (tol 1e-10)" in out, out
    assert "step 2 loss" in out and "measured" in out and "bubble" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    events = json.loads(trace.read_text())["traceEvents"]
    compute = {(e["pid"], e["name"]) for e in events if e.get("cat") == "compute"}
    assert {(0, "F0"), (0, "B1"), (1, "F1"), (1, "B0")} <= compute
    notes = {e["args"]["note"] for e in events if e.get("cat") == "p2p"}
    assert {"activation mb 0", "gradient mb 1"} <= notes
    # per step: M activations 0 -> 1 and M gradients 1 -> 0
    sends = [e for e in events if e.get("cat") == "p2p" and e["name"] == "isend"]
    assert len(sends) == 2 * 2 * 2


@pytest.mark.mpi
def test_three_stages_1f1b_match_one_process():
    out = run_mpi(3, ["-m", "minipar.pipeline", "--schedule", "1f1b", "--micro-batches", "4",
                      "--layers", "4", "--steps", "1", *SMALL], timeout=60).stdout
    assert ": ok (tol 1e-10)" in out and "over 15 tensors" in out, out


@pytest.mark.mpi
def test_deadlocking_plan_refused_on_every_rank():
    proc = run_mpi(2, ["-m", "minipar.pipeline", "--naive-order", "--micro-batches", "4",
                       "--data", "synthetic"], timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("refuses this plan: deadlock between ranks 0 and 1") == 1
    assert "step" not in proc.stdout  # nothing ran


@pytest.mark.mpi
def test_stages_outside_a_dry_run_is_one_line_naming_mpiexec():
    """The stage count of a run is the rank count: --stages alone would be ignored."""
    proc = run_mpi(2, ["-m", "minipar.pipeline", "--stages", "3", "--data", "synthetic"],
                   timeout=60, check=False)
    assert proc.returncode == 2 and "step" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        "minipar: error: --stages is for --dry-run; to train on 3 stages, run "
        "mpiexec -n 3 python -m minipar.pipeline"]

"""``python -m minipar.advise``: its rules on cases whose answer is known by hand, its
counts against the real models, and its command line (docs/scheduling.md)."""

import json
import subprocess
import sys

import pytest

from minipar.planning import advise as adv
from minipar.planning import costmodel as cm
from minipar.planning.methods import LOCAL_SGD_CAVEAT, Network
from minipar.planning.workload import Workload, keras_counts, lstm_counts


def _net(alpha, beta, cores=None):
    return Network("test", cm.CostParams(alpha=alpha, beta=beta, gamma=5e-11), "test", cores)


def _model(params, batch=4096, per_row=1e-6, **kw):
    return Workload(name="test", params=params, batch=batch, fb_line=(0.0, per_row), **kw)


def test_latency_bound_tiny_model_picks_tree_or_rd_over_ring():
    # 4 KB of gradients, 50 us per message: ring's 2(p-1) messages lose to log2 p
    advice = adv.advise(_model(1000), [64, 1024], _net(50e-6, 1e-10))
    for p in (64, 1024):
        assert advice.best[p].method in ("allreduce tree", "allreduce rd"), advice.best[p]
        assert advice.best[p].bound in ("latency", "compute")
        ring = next(r for r in advice.rows if r.ranks == p and r.method == "allreduce ring")
        assert ring.step > 2 * advice.best[p].step


def test_bandwidth_bound_large_model_picks_ring():
    # 400 MB of gradients over 10GbE, one bucket: the bytes decide, ring moves 2(p-1)/p n
    advice = adv.advise(_model(100_000_000), [64], adv.network("10GbE"), buckets=(1 << 30,))
    best = advice.best[64]
    assert best.method.startswith("allreduce ring"), best
    assert best.bound == "bandwidth"
    assert "bandwidth-bound" in advice.reasons[64]
    tree = next(r for r in advice.rows if r.ranks == 64 and r.method.startswith("allreduce tree"))
    assert tree.step > 2 * best.step


def test_a_model_too_big_for_one_rank_gets_only_a_pipeline():
    w = _model(50_000_000, batch=64, layers=4, pipeline=True, cut_bytes_per_row=1 << 16,
               act_bytes_per_row=1 << 16)
    replica = w.memory(16)  # a data-parallel rank at p = 4 holds a whole replica
    advice = adv.advise(w, [4], _net(2e-6, 1e-10), memory=replica * 0.6)
    best = advice.best[4]
    assert best.method.startswith(("gpipe", "1f1b")), best
    assert best.memory <= replica * 0.6
    assert not any(r.fits for r in advice.rows if r.method.startswith("allreduce"))
    assert "only a pipeline" in advice.reasons[4]


def test_local_sgd_is_listed_with_its_caveat_and_never_recommended():
    # communication dominates, so averaging every 4 steps is the fastest row of all
    advice = adv.advise(_model(10_000_000, per_row=1e-7), [8], adv.network("10GbE"))
    sgd = [r for r in advice.rows if r.method.startswith("local SGD")]
    assert sgd and all(not r.exact and r.caveat == LOCAL_SGD_CAVEAT for r in sgd)
    assert min(advice.rows, key=lambda r: r.step) in sgd
    assert not advice.best[8].method.startswith("local SGD")
    assert advice.best[8].exact


def test_one_rank_per_core_versus_ranks_sharing_two_cores():
    w = _model(1000, batch=64, per_row=1e-3)
    shared = adv.advise(w, [1, 4], _net(1e-6, 1e-10, cores=2))
    alone = adv.advise(w, [1, 4], _net(1e-6, 1e-10))
    # four ranks on two cores compute at half speed: 16 rows x 2 against 16 rows
    assert shared.best[4].compute == pytest.approx(2 * alone.best[4].compute)
    assert alone.best[4].efficiency > 0.9 > 0.6 > shared.best[4].efficiency


def test_shm_and_overlap_rows_priced_where_they_can_run():
    w = _model(70_000, batch=256, per_row=1e-5)
    shm_pts = [(1024, 1e-4), (1 << 20, 4e-4)]  # cheaper than any message here
    params = cm.CostParams(alpha=1e-4, beta=1e-9, gamma=5e-11, shm={4: shm_pts})
    host = Network("this host", params, "test", cores=2)
    advice = adv.advise(w, [2, 4], host)
    at = {(r.method, r.ranks): r for r in advice.rows}
    assert advice.best[4].method == "allreduce shm"
    assert at[("allreduce shm", 4)].bytes_sent == 0
    assert at[("allreduce shm", 4)].comm == pytest.approx(
        cm.allreduce_time("shm", 4, w.grad_bytes, params)
        + cm.allreduce_time("shm", 4, 24, params))
    assert ("allreduce ring +overlap", 4) in at and ("allreduce mpi +overlap (assumed)", 4) in at
    skipped = {(m, p): why for m, p, why in advice.skipped}
    assert "none was made at p=2" in skipped[("allreduce shm", 2)]
    network = adv.advise(w, [4], Network("net", params, "test"))  # one rank per core, hosts
    assert "one host" in {(m, p): why for m, p, why in network.skipped}[("allreduce shm", 4)]


def test_measured_lines_name_the_fastest_exact_run():
    from minipar.planning.advise_report import measured_lines

    advice = adv.advise(_model(1000, batch=64, per_row=1e-3), [2], _net(1e-6, 1e-10))
    best = advice.best[2].method
    other = next(r.method for r in advice.rows if r.exact and r.method != best)
    sgd = next(r.method for r in advice.rows if not r.exact)
    lines = measured_lines(advice, {(best, 2): 0.010, (other, 2): 0.008, (sgd, 2): 0.001})
    assert lines == [f"  measured at p=2 (2 methods run): fastest {other} 8 ms; "
                     f"the recommendation {best} took 10 ms (1.25x)"]
    assert "was the fastest" in measured_lines(advice, {(best, 2): 0.005, (other, 2): 0.008})[0]


def test_a_crossover_is_named_where_the_choice_changes():
    # 1 MB of gradients over 10GbE: ring's bytes win at 4 ranks, its 2(p-1) messages lose
    # to recursive doubling's log2 p at 256
    advice = adv.advise(_model(250_000, per_row=1e-9), [4, 256], adv.network("10GbE"))
    assert advice.best[4].method == "allreduce ring", advice.reasons
    assert advice.best[256].method == "allreduce rd", advice.reasons
    assert advice.crossovers == [(4, 256, "allreduce ring", "allreduce rd")]


def test_lstm_counts_match_the_model():
    from minipar.core import backend
    from minipar.models.lstm_lm import LSTMLM

    backend.seed(0)
    for tied in (False, True):
        model = LSTMLM(65, 64, 64 if tied else 128, 2, tied)
        c = lstm_counts(65, 64, 64 if tied else 128, 2, 32, tied=tied)
        assert c["params"] == model.num_parameters()


def test_keras_counts_match_the_model(tmp_path):
    from minipar import keras

    model = keras.Sequential([keras.layers.Embedding(1000, 64), keras.layers.LSTM(64),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.build((None, 40))
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert keras_counts(config)["params"] == model.count_params()
    # and the advisor times it with fit
    proc = _advise("--keras", str(tmp_path / "m"), "--batch", "32", "--ranks", "1,2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["recommendation"]["2"]["method"].startswith("allreduce")
    assert all(r["compute_s"] > 0 for r in out["rows"])


def test_networks_parse_and_refuse():
    net = adv.network("alpha=5us,beta=0.1ns/B")
    assert net.params.alpha == pytest.approx(5e-6) and net.params.beta == pytest.approx(1e-10)
    assert adv.network("100gb-ib").params.beta == pytest.approx(1 / 11e9)
    for bad in ("carrier-pigeon", "alpha=5parsecs,beta=1ns/B", "alpha=5us"):
        with pytest.raises(Exception, match="network"):
            adv.network(bad)


def _advise(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "minipar.advise", "--plot", "", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, words", [
    (["--model", "transformer"], "unknown model"),
    (["--network", "carrier-pigeon"], "unknown network"),
    (["--ranks", "0,2"], ">= 1"),
    (["--ranks", "two"], "whole numbers"),
    (["--memory", "lots"], "bad size"),
    (["--params", "25M"], "--params, --flops and --batch"),
    (["--model", "ngram", "--measure"], "--measure runs minipar.train models"),
    (["--measure", "--steps", "2"], "--steps at least 5"),
    (["--data-size", "many"], "write a number"),
    (["--calibration", "two=cal.json"], "P=PATH"),
])
def test_bad_input_is_one_line(args, words):
    proc = _advise(*args, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_json_rows_and_a_recommendation_per_rank_count():
    proc = _advise("--model", "mlp", "--max-chars", "20000", "--ranks", "1,2,1024", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {r["ranks"] for r in out["rows"]} == {1, 2}  # 256 rows cannot feed 1,024 ranks
    for r in out["rows"]:
        assert {"method", "ranks", "predicted_s"} <= set(r) and r["predicted_s"] > 0
    assert set(out["recommendation"]) == {"1", "2", "1024"}
    assert out["recommendation"]["2"]["method"].startswith("allreduce")
    assert out["recommendation"]["1024"]["method"] is None
    assert "raise --batch" in out["recommendation"]["1024"]["reason"]


def test_raw_counts_and_the_table(tmp_path):
    png = tmp_path / "advise.png"
    proc = subprocess.run([sys.executable, "-m", "minipar.advise", "--params", "25M",
                           "--flops", "1G", "--batch", "1024", "--network", "10GbE",
                           "--ranks", "1,8,64", "--data-size", "2M", "--plot", str(png)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Recommendation" in proc.stdout and "p=64:" in proc.stdout
    assert "one epoch (2,000,000 rows, 1,954 steps)" in proc.stdout
    assert png.stat().st_size > 10_000


@pytest.mark.mpi
@pytest.mark.slow
def test_measure_sets_measured_beside_predicted():
    proc = _advise("--model", "mlp", "--max-chars", "20000", "--ranks", "1,2", "--measure",
                   "--top", "1", "--steps", "8", "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in json.loads(proc.stdout)["rows"] if "measured_s" in r]
    assert {r["ranks"] for r in rows} == {1, 2}
    for r in rows:
        assert 0 < r["measured_s"] < 5


def test_every_measurable_row_names_its_command():
    from minipar.training.advise_runs import pipeline_args, train_args

    assert train_args("allreduce ring, 4 MiB buckets", {"model": "mlp"}) == [
        "--model", "mlp", "--sync", "allreduce", "--allreduce", "ring", "--bucket-kb", "4096"]
    assert train_args("allreduce mpi +overlap (assumed)", {})[-1] == "--overlap"
    assert train_args("allreduce shm", {})[-2:] == ["--allreduce", "shm"]
    assert train_args("allreduce ring +overlap", {})[-3:] == ["--allreduce", "ring", "--overlap"]
    assert train_args("local SGD k=16 (ring)", {})[:4] == ["--sync", "average",
                                                          "--average-every", "16"]
    assert train_args("parameter server", {}) == ["--sync", "ps"]
    assert train_args("1f1b M=4", {}) is None
    cfg = {"layers": 2, "embed": 64, "hidden": 128, "batch_size": 32, "seq_len": 64,
           "dtype": "float32"}
    assert pipeline_args("1f1b M=4", {}, cfg)[:4] == ["--schedule", "1f1b",
                                                      "--micro-batches", "4"]

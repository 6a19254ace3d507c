"""bench race: one run per seed, the picture, and the line that counts the seeds below the
N-gram (the runs themselves are faked here; the real ones are benchmarks)."""

import pytest

from minipar.bench import race


def fake_run(ranks, every, extra):
    seed = int(extra[extra.index("--seed") + 1])
    end = {0: 3.20, 1: 3.25, 2: 3.19}[seed]
    curve = [{"step": 100, "train_s": 5.0, "ppl": 4.0}, {"step": 200, "train_s": 10.0,
                                                          "ppl": end}]
    cross = curve[1] if end < 3.232 else None
    return {"command": f"mpiexec -n {ranks} python -m minipar.train --eval-every {every}",
            "wall_s": 12.0, "curve": curve, "ngram_ppl": 3.232, "crossing": cross}


def test_seeds_run_once_each_and_are_counted(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(race, "run", fake_run)
    png = tmp_path / "race.png"
    assert race.main(["--seeds", "0,1,2", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.count("| step | seconds of training | validation ppl |") == 3
    assert ("seeds 0, 1, 2: the LSTM ends at 3.200, 3.250, 3.190 (median 3.200) against the "
            "5-gram's 3.232: below it for 2 of 3") in out
    assert png.stat().st_size > 1000
    runs = [{"command": f"mpiexec -n 4 python -m minipar.train --eval-every 100 --seed {k}"}
            for k in (0, 1)]
    assert race.title(runs) == "mpiexec -n 4 python -m minipar.train --eval-every 100 --seed S"
    assert race.title(runs[:1]).endswith("--eval-every 100 --seed 0")


def test_bad_seeds_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        race.main(["--seeds", "0,x"])
    assert exc.value.code == 2
    assert "--seeds must be whole numbers" in capsys.readouterr().err

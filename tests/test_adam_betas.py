"""Adam's betas are options with per-model defaults; a checkpoint written before they were
options resumes with the betas it trained with."""

import pytest

from minipar.core.errors import ConfigError
from minipar.training import config
from minipar.training.config import parse_args, resumed_options
from minipar.training.run import task_config
from minipar.training.tasks import get_task


def _betas(argv):
    cfg = task_config(parse_args(argv))
    model = get_task(cfg.model).build_model(cfg, 12)
    opt = get_task(cfg.model).make_optimizer(model, cfg)
    return opt.b1, opt.b2


@pytest.mark.parametrize("argv, betas", [
    ([], (0.8, 0.99)),                                  # the LSTM's measured defaults
    (["--model", "mlp"], (0.9, 0.999)),
    (["--model", "classifier"], (0.9, 0.999)),
    (["--beta1", "0.5", "--beta2", "0.9"], (0.5, 0.9)),
    (["--model", "mlp", "--beta2", "0.95"], (0.9, 0.95)),
])
def test_the_optimizer_gets_the_betas(argv, betas):
    assert _betas(argv) == betas


@pytest.mark.parametrize("argv", [["--beta1", "1"], ["--beta2", "-0.1"], ["--beta1", "1.5"]])
def test_a_beta_outside_0_1_is_one_error(argv):
    with pytest.raises(ConfigError, match=r"--beta[12] must be in \[0, 1\)"):
        parse_args(argv)


def test_an_old_checkpoint_resumes_with_the_old_betas(monkeypatch):
    metas = {"old": {"config": {"model": "lstm", "lr": 0.02}},
             "new": {"config": {"model": "lstm", "lr": 0.02, "beta1": None, "beta2": 0.95}}}
    monkeypatch.setattr(config.checkpoint, "resolve", lambda path: (path, None))
    monkeypatch.setattr(config.checkpoint, "read_meta", lambda path: metas[path])
    old = resumed_options("old")
    assert (old["beta1"], old["beta2"]) == (0.9, 0.999)
    new = resumed_options("new")
    assert (new["beta1"], new["beta2"]) == (None, 0.95)

"""The graph itself: accumulation, deep chains, no_grad, detach, hooks, Module, optimizers."""

import numpy as np
import pytest

from minipar.autograd import Tensor, no_grad, ops
from minipar.core.errors import CheckpointError
from minipar.nn import Linear, Module
from minipar.nn.optim import SGD, Adam, Optimizer, clip_grad_norm


def test_gradient_accumulates_over_uses():
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward(np.ones(1))
    assert x.grad[0] == 7.0


def test_two_thousand_step_chain_has_no_recursion_limit():
    x = Tensor(np.array([0.5]), requires_grad=True)
    h = x
    for _ in range(2000):
        h = ops.tanh(h * 1.0001 + 0.001)
    h.sum().backward()
    # reference: the same chain rule by hand
    v, d = 0.5, 1.0
    for _ in range(2000):
        v = np.tanh(v * 1.0001 + 0.001)
        d *= (1 - v * v) * 1.0001
    assert abs(x.grad[0] - d) < 1e-12 * max(1, abs(d))


def test_no_grad_and_detach_cut_the_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad
    z = (x * 3).detach()
    assert not z.requires_grad and z.is_leaf
    with pytest.raises(RuntimeError):
        z.sum().backward()


def test_shared_output_array_is_not_aliased_between_leaves():
    a = Tensor(np.zeros(3), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 5  # an in-place change (clipping) must not leak into b
    assert np.all(b.grad == 1)


def test_grad_hook_fires_once_when_gradient_is_complete():
    w = Tensor(np.ones(2), requires_grad=True)
    seen = []
    w.register_grad_hook(lambda t: seen.append(t.grad.copy()))
    y = (w * 2).sum() + (w * 3).sum()  # two uses: the hook must wait for both
    y.backward()
    assert len(seen) == 1 and np.all(seen[0] == 5)


class Tiny(Module):
    def __init__(self):
        super().__init__()
        self.a = Linear(3, 4)
        self.b = Linear(4, 2, bias=False)

    def forward(self, x):
        return self.b(ops.tanh(self.a(x)))


def test_module_names_and_state_roundtrip():
    m = Tiny()
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias", "b.weight"]
    state = m.state_dict()
    m2 = Tiny()
    m2.load_state_dict(state)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(m(x).data, m2(x).data)


def test_load_state_dict_names_every_mismatch():
    m = Tiny()
    state = m.state_dict()
    state["a.weight"] = np.zeros((9, 9))
    del state["b.weight"]
    state["c.bias"] = np.zeros(2)
    with pytest.raises(CheckpointError) as err:
        m.load_state_dict(state)
    msg = str(err.value)
    assert "missing b.weight" in msg and "unexpected c.bias" in msg and "a.weight" in msg


def test_sgd_momentum_matches_hand_computation():
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    ref, vel = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        g = 2 * ref + 0.01 * ref
        vel = 0.9 * vel + g
        ref = ref - 0.1 * vel
    np.testing.assert_allclose(w.data, ref, rtol=1e-12)


def test_adam_matches_formula():
    w = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    opt = Adam([w], lr=0.01)
    ref, m, v = np.array([0.5, -1.5]), np.zeros(2), np.zeros(2)
    for t in range(1, 4):
        opt.zero_grad()
        (w * w * w).sum().backward()
        opt.step()
        g = 3 * ref ** 2
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(w.data, ref, rtol=1e-12)
    state = opt.state_dict()
    opt2 = Adam([w], lr=0.01)
    opt2.load_state_dict(state)
    assert opt2.t == 3 and np.array_equal(opt2.state["m"][0], opt.state["m"][0])


@pytest.mark.parametrize("blocked", [False, True], ids=["whole", "blocked"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_on_flat_buffers_equals_the_per_parameter_rule_exactly(dtype, blocked,
                                                                     monkeypatch):
    """Adam.step (flat m, v and gradients; or, for a large model, blocks of them) against
    Adam._update, one parameter at a time, through 5 steps, a saved and reloaded state, a step
    with a missing gradient and, blocked, a step with a strided parameter."""
    from minipar.nn import optim

    if blocked:  # every model counts as large; blocks of 7 cut parameters mid-way
        monkeypatch.setattr(optim, "BLOCKED_BYTES", 0)
        monkeypatch.setattr(optim, "BLOCK", 7)
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 3, 5), (1,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    fast = [Tensor(a.copy(), requires_grad=True) for a in init]
    slow = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt_fast, opt_slow = Adam(fast, lr=0.01), Adam(slow, lr=0.01)
    assert opt_fast._blocked == blocked
    assert opt_fast._buf["g"].size == (7 if blocked else 47)
    for step in range(6):
        if step == 3 and blocked:  # a strided parameter: the whole-buffer path, same numbers
            fast[0].data = np.asfortranarray(fast[0].data)
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        if step == 4:
            grads[1] = None  # the per-parameter path, on the flat views
        for f, sl, g in zip(fast, slow, grads):
            f.grad, sl.grad = (None, None) if g is None else (g.copy(), g.copy())
        opt_fast.step()
        Optimizer.step(opt_slow)  # the rule as written (_update), parameter by parameter
        if step == 2:  # a checkpoint round trip keeps the flat views
            opt_fast.load_state_dict(opt_fast.state_dict())
        for f, sl in zip(fast, slow):
            assert np.array_equal(f.data, sl.data), step
    for s in ("m", "v"):
        for a, b in zip(opt_fast.state[s], opt_slow.state[s]):
            assert np.array_equal(a, b)


def test_clip_grad_norm_scales_to_max_norm():
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    norm = clip_grad_norm([a, b], 1.0)
    assert norm == pytest.approx(5.0)
    total = np.sqrt((a.grad ** 2).sum() + (b.grad ** 2).sum())
    assert total == pytest.approx(1.0, rel=1e-5)

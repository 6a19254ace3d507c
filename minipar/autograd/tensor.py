"""Tensor, the computation graph and reverse-mode differentiation.

A ``Tensor`` wraps an array (``data``) from the backend's array module and, when it was made
by an op with a grad-requiring input, a ``Node``: the op (a ``Function`` subclass), its saved
context and its input tensors. ``backward()`` visits the nodes in reverse topological order,
found iteratively (a 2,000-step unrolled LSTM graph is far deeper than Python's recursion
limit), and applies the chain rule

    dL/dx_i = sum over uses of x_i of  backward_op(dL/d out)_i

accumulating into ``.grad`` of the leaves. Each op says how to get from dL/d(out) to
dL/d(inputs) in its own ``backward(ctx, grad)``; see ``functions.py``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from minipar.autograd import pollers
from minipar.core import backend

from minipar.core.backend import xp

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad", True)


@contextmanager
def no_grad():
    """Inside this block ops record no graph (evaluation, optimizer updates)."""
    old = is_grad_enabled()
    _state.grad = False
    try:
        yield
    finally:
        _state.grad = old


class Context:
    """Scratch space an op's forward leaves for its backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved = ()

    def save_for_backward(self, *arrays):
        self.saved = arrays


class Node:
    """One op application in the graph: who made the outputs, from which inputs."""

    __slots__ = ("fn", "ctx", "inputs", "out_meta", "out_grads")

    def __init__(self, fn, ctx, inputs, out_meta):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs  # positional args; None where the arg was not a Tensor
        self.out_meta = out_meta  # (shape, dtype) of each output
        self.out_grads = [None] * len(out_meta)


class Function:
    """Base class of every op: ``forward(ctx, *arrays, **kw)`` and ``backward(ctx, *grads)``.

    ``forward`` takes raw arrays (tensors are unwrapped) and returns an array or a tuple of
    arrays. ``backward`` gets one gradient per output and returns one gradient per positional
    input (``None`` where an input needs none). ``apply`` wires it into the graph.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        track = is_grad_enabled() and any(needs)
        ctx = Context(needs)
        out = cls.forward(ctx, *raw, **kwargs)
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        tensors = tuple(Tensor(o, requires_grad=track) for o in outs)
        if track:
            node = Node(cls, ctx, [a if isinstance(a, Tensor) else None for a in args],
                        [(o.shape, o.dtype) for o in outs])
            for i, t in enumerate(tensors):
                t._node, t._index = node, i
        return tensors if multi else tensors[0]


def _as_array(data, dtype=None):
    """Array on the current device. Python numbers and lists take the default float dtype
    (ints stay ints); arrays and NumPy scalars keep their own dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return xp.asarray(data, dtype=dtype)
    if type(data) in (float, list, tuple):
        arr = xp.asarray(data)
        return arr.astype(backend.default_dtype()) if arr.dtype.kind == "f" else arr
    return xp.asarray(data)


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data``: the array; ``grad``: dL/d(data) after ``backward()`` (same shape), or None;
    ``requires_grad``: whether gradients flow to it. Leaves made by the user (parameters,
    inputs) have no node; results of ops on grad-requiring tensors have one.
    """

    __array_priority__ = 100  # so ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None
        self._index = 0
        self._hooks = None

    # --- plain properties -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{flag})"

    def numpy(self):
        """A host (NumPy) copy of the data."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        """The value of a one-element tensor (from a GPU: one counted device-to-host copy)."""
        if self.data.size != 1:
            _not_scalar(self)
        return float(backend.to_numpy(self.data.reshape(-1)[:1])[0])

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def register_grad_hook(self, fn) -> None:
        """Call ``fn(tensor)`` when this leaf's gradient is complete during ``backward()``
        (every use of it has contributed). Gradient buckets start their allreduce here."""
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)

    # --- backward ---------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Reverse-mode differentiation from this tensor. ``grad`` defaults to 1 for a
        scalar; for other shapes it must be given (it is dL/d self)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError("backward() needs a gradient for a non-scalar tensor")
            grad = xp.ones_like(self.data)
        grad = _as_array(grad, dtype=self.data.dtype)
        if self._node is None:
            _accumulate_leaf(self, grad)
            _run_hooks(self)
            return
        order, uses = _topological_order(self._node)
        self._node.out_grads[self._index] = grad
        for node in order:
            grads = node.out_grads
            if all(g is None for g in grads):
                in_grads = (None,) * len(node.inputs)
            else:
                grads = [xp.zeros(s, d) if g is None else g
                         for g, (s, d) in zip(grads, node.out_meta)]
                in_grads = node.fn.backward(node.ctx, *grads)
                if not isinstance(in_grads, tuple):
                    in_grads = (in_grads,)
            for t, g in zip(node.inputs, in_grads):
                if t is None or not t.requires_grad:
                    continue
                if t._node is None:
                    if g is not None:
                        _accumulate_leaf(t, g)
                    uses[id(t)] -= 1
                    if uses[id(t)] == 0:
                        _run_hooks(t)
                elif g is not None:
                    old = t._node.out_grads[t._index]
                    t._node.out_grads[t._index] = g if old is None else old + g
            node.out_grads = [None] * len(node.out_meta)
            if pollers.ACTIVE:  # communication in flight moves on between nodes
                pollers.poll()
            if not retain_graph:
                node.ctx = None
                node.inputs = [None] * len(node.inputs)
        if not retain_graph:
            self._node = None

    # --- operators (defined in functions.py, attached there) ---------------------------


def _not_scalar(t):
    raise ValueError(f"item() needs a one-element tensor, got shape {t.shape}")


def _accumulate_leaf(t: Tensor, g) -> None:
    if g.shape != t.data.shape:
        raise RuntimeError(f"gradient shape {g.shape} does not match tensor shape {t.shape}")
    # copy on first write: an op may hand the same array to several inputs
    t.grad = g.copy() if t.grad is None else t.grad + g


def _run_hooks(t: Tensor) -> None:
    if t._hooks:
        for fn in t._hooks:
            fn(t)


def _topological_order(root: Node):
    """Nodes in reverse topological order (outputs before inputs), found without recursion,
    and for each grad-requiring leaf the number of edges that reach it."""
    post, seen, uses = [], set(), {}
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            if t is None or not t.requires_grad:
                continue
            if t._node is None:
                uses[id(t)] = uses.get(id(t), 0) + 1
            elif id(t._node) not in seen:
                stack.append((t._node, False))
    post.reverse()
    return post, uses

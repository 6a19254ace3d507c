"""The fast LSTM layer: one ``Function`` whose whole-sequence forward and backward (BPTT)
are written by hand on the backend's array module (NumPy, or CuPy unchanged).

Parameters as everywhere in minipar (docs/lstm.md): ``w_ih`` (D, 4H), ``w_hh`` (H, 4H),
``b`` (4H,), gate blocks along the 4H axis in the order i, f, g, o.

Forward, t = 0..T-1, x batch-first (B, T, D), states (B, H):

    z_t = x_t W_ih + h_{t-1} W_hh + b
    i = sigmoid(z_i),  f = sigmoid(z_f),  g = tanh(z_g),  o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g,        h_t = o * tanh(c_t)

Backward, t = T-1..0, with dh_t = dout_t + dz_{t+1} W_hh^T (the last from h_n's gradient)
and dc starting at c_n's gradient:

    dc_t += dh_t * o * (1 - tanh(c_t)^2)
    dz_i = dc_t * g * i (1 - i)            dz_f = dc_t * c_{t-1} * f (1 - f)
    dz_g = dc_t * i * (1 - g^2)            dz_o = dh_t * tanh(c_t) * o (1 - o)
    dc_{t-1} = dc_t * f

then, from all the dz_t at once (one GEMM each, after the time loop):

    [dW_ih; db] = [X 1]^T dZ,   dW_hh = H_prev^T dZ,   dX = dZ W_ih^T

where X, H_prev and dZ stack all steps as rows (T*B of them).

How it is made fast (each point measured; docs/benchmarks.md):

- Inside the time loop everything is transposed: a state is (H, B) and a step's gates
  (4H, B), so each gate block is a contiguous (H, B) slice (NumPy runs a ufunc on a
  contiguous block several times faster than on a strided slice) and the two per-step
  GEMMs take BLAS's fast shapes, z^T = W_hh^T h^T and dh^T = W_hh dz^T.
- The input projections of all steps, bias included (a column of ones beside X), are one
  batched matmul before the loop, written straight into the per-step (4H, B) layout (one
  (T*B, D+1) GEMM measured a little faster alone, but left each step's slice strided and
  the strided per-step add cost more than that). The weight gradients are one GEMM each
  after the loop; for them h_t and dz_t are also kept batch-major, (T, B, .), by a small
  per-step copy.
- sigmoid(z) = (1 + tanh(z/2)) / 2, with the 1/2 folded into the weight rows of i, f, o
  (exact: a power of two), so one tanh pass over all 4H rows gives tanh(z_g) and
  tanh(z/2) for the other gates. NumPy's tanh is vectorised and cheaper than the three
  passes exp, +1, reciprocal of the exp form; it never overflows.
- Buffers are allocated once per sequence; the step's work runs in place (out=). The big
  ones are recycled between calls (``_BufferPool``): a fresh multi-megabyte array costs
  page faults each time, since the allocator hands large blocks back to the system.
"""

from __future__ import annotations

import weakref


from minipar.core.backend import xp
from minipar.autograd import pollers
from minipar.autograd.tensor import Function


class _BufferPool:
    """Arrays of finished calls, kept for the next call asking for the same shape and dtype.

    A forward's saved buffers come back when its context is dropped (after backward, or at
    once when no graph is recorded); backward's scratch buffers when it returns. At most
    ``per_key`` arrays are kept per shape, so memory stays bounded by a few sequences."""

    def __init__(self, per_key: int = 8):
        self.per_key = per_key
        self.free = {}

    def take(self, shape, dtype):
        stack = self.free.get((tuple(shape), xp.dtype(dtype).str, xp.ndarray))
        return stack.pop() if stack else xp.empty(shape, dtype=dtype)

    def give(self, *arrays):
        for a in arrays:
            stack = self.free.setdefault((a.shape, a.dtype.str, type(a)), [])
            if len(stack) < self.per_key:
                stack.append(a)

    def clear(self) -> None:
        self.free.clear()


_POOL = _BufferPool()


def clear_buffers() -> None:
    """Let go of the recycled buffers (e.g. after training, before a large evaluation)."""
    _POOL.clear()


class LSTMLayer(Function):
    """One LSTM layer over a whole sequence.

    forward(x (B, T, D), h0 (B, H), c0 (B, H), w_ih, w_hh, b) -> (out (B, T, H), h_n, c_n)
    backward(dout, dh_n, dc_n) -> (dx, dh0, dc0, dw_ih, dw_hh, db)
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b):
        B, T, D = x.shape
        H = w_hh.shape[0]
        dt = xp.result_type(x.dtype, w_ih.dtype)
        matmul, multiply, tanh = xp.matmul, xp.multiply, xp.tanh  # looked up once, not per step
        s = xp.full((4 * H, 1), 0.5, dtype=dt)   # row factors: 1/2 for i, f, o; 1 for g
        s[2 * H:3 * H] = 1.0
        take = _POOL.take
        XB = take((T, B, D + 1), dt)            # [x_t 1], batch-major
        XB[..., :D] = x.transpose(1, 0, 2)
        XB[..., D] = 1.0
        w_in = xp.concatenate([w_ih, b[None, :]], axis=0).T * s     # (4H, D+1)
        w_rec = xp.ascontiguousarray(w_hh.T * s)                   # (4H, H)
        G = take((T, 4 * H, B), dt)      # scaled x_t W_ih + b, then the gate values
        xp.matmul(w_in, XB.transpose(0, 2, 1), out=G)
        Hb = take((T + 1, B, H), dt)     # Hb[t + 1] = h_t, Hb[0] = h0
        Cs = take((T + 1, H, B), dt)     # Cs[t + 1] = c_t^T
        TC = take((T, H, B), dt)         # tanh(c_t)^T
        Hb[0] = h0
        Cs[0] = c0.T
        h = xp.array(h0.T, dtype=dt, order="C")     # h_{t-1}^T, an own copy: written
        rec = xp.empty((4 * H, B), dtype=dt)
        tmp = xp.empty((H, B), dtype=dt)
        for t in range(T):
            a = G[t]
            matmul(w_rec, h, out=rec)
            a += rec
            tanh(a, out=a)                      # tanh(z/2) for i, f, o; tanh(z) for g
            sig = a[:2 * H]
            o = a[3 * H:]
            sig *= 0.5
            sig += 0.5                             # i, f, o = (1 + tanh(z/2)) / 2
            o *= 0.5
            o += 0.5
            i, f, g = a[:H], a[H:2 * H], a[2 * H:3 * H]
            c = Cs[t + 1]
            multiply(f, Cs[t], out=c)
            multiply(i, g, out=tmp)
            c += tmp                               # c_t = f c_{t-1} + i g
            tanh(c, out=TC[t])
            multiply(o, TC[t], out=h)           # h_t = o tanh(c_t)
            Hb[t + 1] = h.T
        ctx.save_for_backward(XB, G, Hb, Cs, TC, w_ih, w_hh)
        weakref.finalize(ctx, _POOL.give, XB, G, Hb, Cs, TC)
        # outputs are always copies: the buffers above will be reused
        out = xp.array(Hb[1:].transpose(1, 0, 2), order="C")
        return out, Hb[T].copy(), xp.array(Cs[T].T, order="C")

    @staticmethod
    def backward(ctx, dout, dh_n, dc_n):
        XB, G, Hb, Cs, TC, w_ih, w_hh = ctx.saved
        T, H4, B = G.shape
        H, D = H4 // 4, XB.shape[2] - 1
        dt = G.dtype
        matmul, multiply, subtract, add = xp.matmul, xp.multiply, xp.subtract, xp.add
        need_x, need_h0, need_c0, need_wih, need_whh, need_b = ctx.needs_input_grad
        dout_t = _POOL.take((T, H, B), dt)
        dout_t[...] = dout.transpose(1, 2, 0)
        dZ = _POOL.take((T, B, H4), dt)          # dz_t, batch-major, for the weight GEMMs
        # own C-ordered copies (updated in place below): the gradients reaching h_t, c_t
        dh_rec = xp.array(dh_n.T, dtype=dt, order="C")
        dc = xp.array(dc_n.T, dtype=dt, order="C")
        dh = xp.empty((H, B), dtype=dt)
        tmp = xp.empty((H, B), dtype=dt)
        P = xp.empty((H4, B), dtype=dt)          # partners: [dc g, dc c_prev, dc i, dh tc]
        dz = xp.empty((H4, B), dtype=dt)         # gate derivatives, then dz_t^T
        for t in range(T - 1, -1, -1):
            a, tc = G[t], TC[t]
            i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
            add(dout_t[t], dh_rec, out=dh)
            multiply(tc, tc, out=tmp)          # dc += dh * o * (1 - tc^2)
            subtract(1.0, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            subtract(1.0, a, out=dz)           # s (1 - s) for all four blocks ...
            dz *= a
            dg = dz[2 * H:3 * H]
            multiply(g, g, out=dg)             # ... then 1 - g^2 for the g block
            subtract(1.0, dg, out=dg)
            multiply(dc, g, out=P[:H])
            multiply(dc, Cs[t], out=P[H:2 * H])
            multiply(dc, i, out=P[2 * H:3 * H])
            multiply(dh, tc, out=P[3 * H:])
            dz *= P
            dc *= f                               # dc_{t-1} = dc_t f
            if t > 0 or need_h0:
                matmul(w_hh, dz, out=dh_rec)   # dh_{t-1}^T = W_hh dz_t^T
            dZ[t] = dz.T
            if pollers.ACTIVE:  # let a gradient bucket's allreduce in flight move on
                pollers.poll()
        dZ2 = dZ.reshape(T * B, H4)
        dx = dwih = dwhh = db = None
        if need_x:
            dxb = xp.matmul(dZ2, w_ih.T).reshape(T, B, D)
            dx = xp.ascontiguousarray(dxb.transpose(1, 0, 2))
        if need_wih or need_b:
            dw_in = xp.matmul(XB.reshape(T * B, D + 1).T, dZ2)     # [dW_ih; db]
            dwih = dw_in[:D] if need_wih else None
            db = dw_in[D] if need_b else None
        if need_whh:
            dwhh = xp.matmul(Hb[:T].reshape(T * B, H).T, dZ2)
        _POOL.give(dout_t, dZ)
        dh0 = xp.ascontiguousarray(dh_rec.T) if need_h0 else None
        dc0 = xp.ascontiguousarray(dc.T) if need_c0 else None
        return dx, dh0, dc0, dwih, dwhh, db


def lstm_layer(x, h0, c0, w_ih, w_hh, b):
    """Functional form: ``(out, h_n, c_n)`` tensors for one layer (h0, c0 tensors or arrays)."""
    return LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b)

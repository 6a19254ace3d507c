"""A PNG timeline of a traced run, for people who do not want to open a trace viewer.

One band per rank (rank 0 on top) with two lanes: computation (the ``tracer.compute``
spans) above, communication below. A hand-written collective is a pale bar under its
messages; each message is coloured by its kind, and a thin line joins each send to its
matching receive (the first ``max_arrows`` of them). Time is in ms from the ranks' common
origin.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend), so it
works headless and inside MPI ranks.
"""

from __future__ import annotations

import os
import zlib


from minipar.comm.trace import match_messages

__all__ = ["write_png", "COLORS"]

COLORS = {"send": "#f28e2b", "recv": "#e15759", "sendrecv": "#b07aa1", "mpi": "#4e79a7",
          "coll": "#d9d2e9", "check": "#999999", "copy": "#59a14f"}
_COMPUTE = ["#59a14f", "#8cd17d", "#76b7b2", "#edc948", "#9c755f", "#bab0ac"]


def _color(ev) -> str:
    if ev.kind == "compute":  # the same name gets the same colour on every rank and run
        return _COMPUTE[zlib.crc32(ev.op.encode()) % len(_COMPUTE)]
    if ev.kind == "p2p":
        return COLORS[ev.op.lstrip("i")]
    return COLORS[ev.kind]


def write_png(path, ranks, max_arrows: int = 400, width: float = 12.0) -> None:
    """Draw ``ranks`` (``[(origin, [Event])]``, as ``trace.load`` gives) into ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: only when drawing
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = max(len(ranks), 1)
    fig = Figure(figsize=(width, 1.0 + 0.9 * n))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lanes = {}  # (y, colour) -> [(start, width)]
    seen_compute = {}
    for rank, (origin, evs) in enumerate(ranks):
        for ev in evs:
            comp = ev.kind == "compute"
            y = rank + (0.05 if comp else 0.47 if ev.kind == "coll" else 0.5)
            span = ((ev.t0 - origin) * 1e3, max((ev.t1 - ev.t0) * 1e3, 1e-4))
            lanes.setdefault((y, _color(ev), ev.kind == "coll"), []).append(span)
            if comp:
                seen_compute[ev.op] = _color(ev)
    for (y, color, pale), spans in sorted(lanes.items(), key=lambda kv: not kv[0][2]):
        h = 0.44 if pale else 0.38  # collective spans drawn first, a little taller, behind
        ax.broken_barh(spans, (y, h), facecolors=color, edgecolors="none")
    origins = [o for o, _ in ranks]
    for s, r in match_messages(ranks)[:max_arrows]:
        xs = (s.t0 - origins[s.rank]) * 1e3  # the send starts ...
        xr = (r.t1 - origins[r.rank]) * 1e3  # ... and the receive ends
        ax.annotate("", xy=(xr, r.rank + 0.69), xytext=(xs, s.rank + 0.69),
                    arrowprops=dict(arrowstyle="->", lw=0.5, color="#333333", alpha=0.6))
    ax.set_ylim(n, 0)
    ax.set_yticks([r + 0.5 for r in range(n)], [f"rank {r}" for r in range(n)])
    ax.set_xlabel("time (ms)")
    ax.set_title("compute (upper lane) and communication (lower lane) per rank")
    handles = [Patch(color=c, label=name) for name, c in seen_compute.items()]
    handles += [Patch(color=c, label=k if k != "coll" else "hand-written collective")
                for k, c in COLORS.items()]
    # about four legend rows fit an inch of the figure: more names go in more columns
    rows = max(4, int(4 * (1.0 + 0.9 * n)))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              ncol=-(-len(handles) // rows))
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)

"""Gantt charts (PNG) of plans and runs: one row per rank, one bar per action.

A timeline is a list of spans ``(rank, start, end, label)``: the simulator produces them for
a plan (``SimResult.spans``), and a measured run gives the same shape from its trace. Labels
pick the colour: ``F3``/``B3`` forward/backward of micro-batch 3, ``T5`` task 5, ``send...``
and ``recv...`` messages; anything else is grey. Blank space on a row is idle time: in a
pipeline it is the bubble.

Drawing goes through matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch), so it works headless and inside MPI ranks.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from minipar.planning.simulate import simulate

__all__ = ["plot_spans", "plot_plan", "plot_compare", "color_of"]

_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def color_of(label: str) -> str:
    """Colour of a span by what its label names (see the module docstring)."""
    if re.fullmatch(r"F\d+", label):
        return "#4e79a7"
    if re.fullmatch(r"B\d+", label):
        return "#59a14f"
    m = re.fullmatch(r"T(\d+)", label)
    if m:  # tasks cycle through the palette so neighbours differ
        return _PALETTE[int(m.group(1)) % len(_PALETTE)]
    if label.startswith("send"):
        return "#f28e2b"
    if label.startswith("recv"):
        return "#e15759"
    return "#999999"


def _short(label: str) -> str:
    """Text inside a bar: messages shrink to an arrow and the peer (send_act->1 -> >1)."""
    if "->" in label:
        return ">" + label.split("->")[1]
    if "<-" in label:
        return "<" + label.split("<-")[1]
    return label


def _draw(ax, spans, title: str, p: int | None = None) -> None:
    spans = list(spans)
    p = p or (1 + max((s[0] for s in spans), default=0))
    end = max((s[2] for s in spans), default=1.0) or 1.0
    for rank, start, stop, label in spans:
        width = stop - start
        ax.broken_barh([(start, width)], (rank - 0.4, 0.8), facecolors=color_of(label),
                       edgecolor="white", linewidth=0.5)
        if width > 0.03 * end:  # label only bars wide enough to hold it
            ax.text(start + width / 2, rank, _short(label), ha="center", va="center",
                    fontsize=7, color="white")
    ax.set_ylim(p - 0.5, -0.5)  # rank 0 on top, like a trace viewer
    ax.set_yticks(range(p))
    ax.set_yticklabels([f"rank {r}" for r in range(p)])
    ax.set_xlim(0, end * 1.01)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def plot_spans(spans, path, title: str = "", p: int | None = None,
               xlabel: str = "time") -> Path:
    """One Gantt chart of (rank, start, end, label) spans, written as a PNG to ``path``."""
    p = p or (1 + max((s[0] for s in spans), default=0))
    fig = Figure(figsize=(10, 1.0 + 0.5 * p), layout="constrained")
    ax = fig.add_subplot()
    _draw(ax, spans, title, p)
    ax.set_xlabel(xlabel)
    return _save(fig, path)


def plot_plan(plan, path, title: str | None = None, **sim) -> Path:
    """Simulate ``plan`` (keyword arguments go to ``simulate``) and draw its timeline; the
    title gives the predicted makespan and bubble."""

    res = simulate(plan, **sim)
    name = getattr(plan, "policy", "plan")
    if title is None:
        title = f"{name}: makespan {res.makespan:.4g}, idle {100 * res.bubble:.1f}%"
    return plot_spans(res.spans, path, title, p=res.p)


def plot_compare(predicted, measured, path, titles=("predicted", "measured"),
                 xlabel: str = "seconds") -> Path:
    """Predicted and measured timelines one above the other on the same time axis, so a
    wait the model missed shows up as a longer bar or a gap in the lower chart."""
    p = 1 + max((s[0] for s in list(predicted) + list(measured)), default=0)
    fig = Figure(figsize=(10, 2.0 + 1.0 * p), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    _draw(ax1, predicted, titles[0], p)
    _draw(ax2, measured, titles[1], p)
    end = max((s[2] for s in list(predicted) + list(measured)), default=1.0) or 1.0
    ax2.set_xlim(0, end * 1.01)
    ax2.set_xlabel(xlabel)
    return _save(fig, path)

# file: tutorials/read_trace.py
"""Tutorial 7: what a trace says, per rank: time computing, communicating, and both at once.

    python tutorials/read_trace.py runs/plain/trace.json runs/overlap/trace.json

Reads the Chrome trace minipar writes with --trace (one process per rank; thread 0 holds
the compute spans, thread 1 the communication spans) and keeps the training steps only.
"""

import json
import sys


def union(spans):
    """Merge overlapping (start, end) intervals: the time covered by at least one."""
    out = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def length(spans):
    return sum(e - s for s, e in spans)


def overlap(a, b):
    """Time covered by both unions a and b."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


for path in sys.argv[1:]:
    events = [e for e in json.load(open(path))["traceEvents"]
              if e["ph"] == "X" and e["args"].get("step") is not None]
    print(f"{path}: {len(events)} spans in the training steps")
    print(f"{'rank':>4} {'steps ms':>9} {'compute ms':>11} {'comm ms':>8} {'both ms':>8} "
          f"{'comm alone ms':>14}")
    for rank in sorted({e["pid"] for e in events}):
        mine = [e for e in events if e["pid"] == rank]
        spans = {tid: union([(e["ts"], e["ts"] + e["dur"]) for e in mine if e["tid"] == tid])
                 for tid in (0, 1)}
        wall = max(e["ts"] + e["dur"] for e in mine) - min(e["ts"] for e in mine)
        comp, comm = length(spans[0]), length(spans[1])
        both = overlap(spans[0], spans[1])
        print(f"{rank:>4} {wall / 1e3:>9.1f} {comp / 1e3:>11.1f} {comm / 1e3:>8.1f} "
              f"{both / 1e3:>8.1f} {(comm - both) / 1e3:>14.1f}")

"""Event records and what is made of them: live lines, the table, Chrome trace, PNG (no MPI)."""

import json

from minipar.comm import trace as T
from minipar.comm.trace import Event, Tracer
from minipar.core.units import format_bytes


def ev(rank, kind, op, t0, t1, **kw):
    e = Event(rank, kw.pop("comm", "world"), kind, op, **kw)
    e.t0, e.t1 = t0, t1
    return e


def test_format_bytes():
    assert format_bytes(8) == "8 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(64 * 1024) == "64.0 KiB"
    assert format_bytes(16 << 20) == "16.0 MiB"
    assert format_bytes(3 << 30) == "3.0 GiB"


def test_live_line_matches_the_documented_form():
    e = Event(1, "world", "p2p", "send", algo="ring", coll="allreduce", peers=(2,),
              sent=64 * 1024, step=3, note="2/6 reduce-scatter")
    assert e.line() == "[r1] step 3 ring allreduce 2/6 reduce-scatter send 64.0 KiB -> r2"
    e = Event(0, "world/1", "p2p", "sendrecv", peers=(1, None), sent=8, recv=16, tag=5,
              phase="sync")
    assert e.line() == "[r0] (sync) send 8 B -> r1, recv 16 B <- any tag 5 on world/1"
    e = Event(2, "world", "mpi", "bcast", algo="mpi", sent=0, recv=40, note="root r0", step=0)
    assert e.line() == "[r2] step 0 mpi bcast 40 B root r0"


def test_event_round_trips_through_a_tuple():
    e = ev(0, "p2p", "send", 1.0, 2.0, peers=(1,), sent=4, tag=3)
    e.skey = ("world", 0, 1, 3, 0)
    back = Event.fromtuple(e.astuple())
    assert back.astuple() == e.astuple()


def test_tracer_off_is_a_null_context_and_keeps_nothing():
    tr = Tracer()
    assert not tr.on
    with tr.compute("forward") as span:
        assert span is None
    assert tr.events == []
    tr.set(enabled=True)
    with tr.compute("forward"):
        with tr.compute("inner"):
            pass
    assert [(e.op, e.depth) for e in tr.events] == [("inner", 1), ("forward", 0)]
    tr.set(enabled=False, watch=True)
    assert tr.on and not tr.enabled


def two_ranks():
    """Rank 0 arrives at collective #1 at t=1.0, rank 1 at t=1.5; then r1 sends to r0,
    whose receive started 0.2 s before the send."""
    key = ("world", 1, 0, 7, 0)
    r0 = [ev(0, "mpi", "allreduce", 1.0, 2.0, algo="mpi", cseq=1, sent=8, recv=8),
          ev(0, "p2p", "recv", 3.0, 3.5, peers=(1,), recv=100, tag=7),
          ev(0, "compute", "forward", 0.0, 1.0),
          ev(0, "compute", "backward", 0.5, 0.9, depth=1)]
    r0[1].rkey = key
    r1 = [ev(1, "mpi", "allreduce", 1.5, 2.0, algo="mpi", cseq=1, sent=8, recv=8),
          ev(1, "p2p", "send", 3.2, 3.4, peers=(0,), sent=100, tag=7),
          ev(1, "compute", "forward", 0.0, 1.5)]
    r1[1].skey = key
    return [(0.0, r0), (0.0, r1)]


def test_summary_counts_and_waits():
    rows = T.summarize(two_ranks())
    a, b = rows
    assert (a["msgs_sent"], a["msgs_recv"], a["mpi_colls"]) == (0, 1, 1)
    assert (b["msgs_sent"], b["msgs_recv"]) == (1, 0)
    assert a["bytes_recv"] == 108 and b["bytes_sent"] == 108
    assert abs(a["wait_s"] - (0.5 + 0.2)) < 1e-12  # late collective partner, late sender
    assert b["wait_s"] == 0.0
    assert abs(a["comm_s"] - 1.5) < 1e-12 and abs(a["compute_s"] - 1.0) < 1e-12
    assert a["wall_s"] == 3.5
    table = T.format_table(rows)
    assert "rank" in table and table.splitlines()[-1].split()[0] == "all"


def test_union_of_overlapping_intervals():
    assert T._union([(0, 2), (1, 3), (5, 6)]) == 4
    assert T._union([]) == 0


def test_chrome_trace_has_processes_tracks_and_flows(tmp_path):
    path = tmp_path / "t.json"
    T.write_chrome(path, two_ranks())
    data = json.loads(path.read_text())
    evs = data["traceEvents"]
    names = {(e["pid"], e["args"]["name"]) for e in evs
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {(0, "compute"), (0, "communication"), (1, "compute"), (1, "communication")}
    slices = [e for e in evs if e["ph"] == "X"]
    assert {e["tid"] for e in slices if e["cat"] == "compute"} == {0}
    assert {e["tid"] for e in slices if e["cat"] != "compute"} == {1}
    s = [e for e in evs if e["ph"] == "s"]
    f = [e for e in evs if e["ph"] == "f"]
    assert len(s) == len(f) == 1 and s[0]["id"] == f[0]["id"]
    assert (s[0]["pid"], f[0]["pid"]) == (1, 0)
    assert not list(tmp_path.glob("*.tmp*"))


def test_png_timeline(tmp_path):
    from minipar.comm.timeline import write_png
    path = tmp_path / "t.png"
    write_png(path, two_ranks())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

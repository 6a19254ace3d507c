"""What the trace of a collective must show, judged over all ranks of one finished case.

Each rank's record holds, per peer, the messages and bytes it sent and received during the
student's call (a ``sendrecv`` counts once each way), and the collectives it called.

Patterns (n elements of s bytes, p ranks, L = ceil(log2 p)):

    allreduce       each rank sends and receives at least n*s bytes (its data must leave it,
                    and the sum must reach it); no MPI collective inside the call
    ring_allreduce  sends only to (r+1) mod p, receives only from (r-1) mod p, 2(p-1)
                    messages, between 2(p-1)*floor(n/p) and 2(p-1)*ceil(n/p) elements
    broadcast       each non-root receives at least n*s bytes
    tree_broadcast  each non-root receives exactly one message of n*s bytes, the root none;
                    nobody sends more than L messages and the tree is at most L deep
"""

from __future__ import annotations

import math

from minipar.grading.mpi_worker import describe


def pattern_note(task, p):
    if p == 1:
        return "one rank: nothing to send"
    L = math.ceil(math.log2(p))
    return {"ring_allreduce": f"a ring: 2(p-1) = {2 * (p - 1)} messages per rank, to the right",
            "tree_broadcast": f"a tree: p-1 = {p - 1} messages, at most {L} deep"}.get(
        task, "point-to-point only, every message received")


def calls_problem(done, own=False) -> str | None:
    """MPI's collectives (or minipar's, unless ``own``: the target is minipar's reference)
    called inside the student's function, in any finished case."""
    for case, recs in done:
        what = describe(case)
        calls = sorted({c for x in recs.values() for c in x["mpi"]})
        if calls:
            return (f"{what}: your function called MPI's own {', '.join(calls)} (the comm's "
                    "collective methods): build it from send, recv and sendrecv only")
        ours = sorted({c for x in recs.values() for c in x["coll"]})
        if ours and not own:
            return f"{what}: your function called minipar's own {', '.join(ours)}: write your own"
    return None


def messages(task, p, done) -> str | None:
    """None if the messages of every case with right results fit the task; else the first
    problem (volume: data that never travelled must have come from elsewhere)."""
    for case, recs in done:
        n, s = case["n"], 4 if case["dtype"] == "float32" else 8
        what = describe(case)
        if p == 1 or n == 0:
            continue
        sent = {r: {int(k): v for k, v in x["sent"].items()} for r, x in recs.items()}
        recv = {r: {int(k): v for k, v in x["recv"].items()} for r, x in recs.items()}
        if not any(sent.values()):
            return (f"{what}: no message between ranks was recorded, yet every rank must learn "
                    "the others' data: the data must travel through comm.send/recv/sendrecv "
                    "(mpi4py's own calls, MPI's allreduce included, are not allowed)")
        for a in range(p):
            for b in range(p):
                out, got = sent[a].get(b, [0, 0]), recv[b].get(a, [0, 0])
                if out != got:
                    return (f"{what}: rank {a} sent {out[0]} message(s) ({out[1]} bytes) to rank "
                            f"{b}, which received {got[0]} ({got[1]} bytes): every message "
                            "must be received, or it is matched by a later, wrong receive")
        root = case["root"]
        for r in range(p):
            out = sum(v[1] for v in sent[r].values())
            got = sum(v[1] for v in recv[r].values())
            if "allreduce" in task and out < n * s:
                return (f"{what}: rank {r} sent only {out} bytes for a {n * s}-byte buffer; "
                        "each rank's data must leave it, so the sum cannot be right unless it "
                        "came from somewhere else (MPI's own allreduce?)")
            if "allreduce" in task and got < n * s or "broadcast" in task and r != root \
                    and got < n * s:
                return (f"{what}: rank {r} received only {got} bytes for a {n * s}-byte "
                        "result: it must have come from somewhere other than messages")
        if task == "ring_allreduce" and n >= p:
            bad = ring_problem(p, n, s, sent, recv)
            if bad:
                return f"{what}: {bad}"
        if task == "tree_broadcast":
            bad = tree_problem(p, n, s, root, sent, recv)
            if bad:
                return f"{what}: {bad}"
    return None


def ring_problem(p, n, s, sent, recv) -> str | None:
    lo, hi = 2 * (p - 1) * (n // p), 2 * (p - 1) * -(-n // p)
    for r in range(p):
        right, left = (r + 1) % p, (r - 1) % p
        if set(sent[r]) - {right}:
            return (f"rank {r} sent to ranks {sorted(sent[r])}: in a ring each rank sends only "
                    f"to its right neighbour (r+1) mod p = {right}")
        if set(recv[r]) - {left}:
            return (f"rank {r} received from ranks {sorted(recv[r])}: in a ring each rank "
                    f"receives only from its left neighbour (r-1) mod p = {left}")
        msgs, nbytes = sent[r].get(right, [0, 0])
        if msgs != 2 * (p - 1):
            return (f"rank {r} sent {msgs} messages; a ring allreduce sends 2(p-1) = "
                    f"{2 * (p - 1)}: p-1 steps of reduce-scatter, then p-1 of allgather")
        if not lo * s <= nbytes <= hi * s:
            return (f"rank {r} sent {nbytes // s} elements; a ring sends one chunk of about "
                    f"n/p per step, 2(p-1)*n/p = {lo}..{hi} elements in all")
    return None


def tree_problem(p, n, s, root, sent, recv) -> str | None:
    L = math.ceil(math.log2(p))
    parent = {}
    for r in range(p):
        got = recv[r]
        count = sum(v[0] for v in got.values())
        if r == root and count:
            return f"the root (rank {root}) received {count} message(s); it should receive none"
        if r != root and (count != 1 or sum(v[1] for v in got.values()) != n * s):
            return (f"rank {r} received {count} message(s); in a tree broadcast every rank but "
                    f"the root receives the whole buffer exactly once")
        if r != root:
            parent[r] = next(iter(got))
    most = max(sum(v[0] for v in sent[r].values()) for r in range(p))
    depth = 0
    for r in parent:
        d, v = 0, r
        while v != root and d <= p:
            v, d = parent.get(v, root), d + 1
        depth = max(depth, d)
    if most > L or depth > L:
        return (f"a rank sent {most} messages and the tree is {depth} deep; a binomial tree "
                f"needs at most ceil(log2 p) = {L} rounds: each rank that has the data passes "
                "it on, so the number of ranks holding it doubles every round")
    return None

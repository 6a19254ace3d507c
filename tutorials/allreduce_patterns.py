# file: tutorials/allreduce_patterns.py
"""Tutorial 5: the message pattern of each hand-written allreduce, read from the trace.

    mpiexec -n 4 python tutorials/allreduce_patterns.py          # the table
    mpiexec -n 3 python tutorials/allreduce_patterns.py ring     # one algorithm's log
"""

import sys

import numpy as np

from minipar.comm import collectives as C
from minipar.comm.communicator import init
from minipar.comm.trace import SENDS

comm = init(trace=True)
p, r = comm.size, comm.rank

if len(sys.argv) > 1:  # watch one algorithm sum a 6-element vector, message by message
    x = np.full(6, float(r + 1))
    comm.tracer.set(show=True)
    C.get_allreduce(sys.argv[1])(comm, x)
    comm.tracer.set(show=False)
    print(f"rank {r} result {x}", flush=True)
    raise SystemExit(0)

n = 3000                                    # float64: 24,000 bytes on every rank
x = np.arange(n, dtype=np.float64) * (r + 1)
want = comm.allreduce(x.copy())             # MPI's own allreduce: the reference
rows = []
for name in ("naive", "tree", "rd", "ring"):
    comm.tracer.events.clear()
    y = C.get_allreduce(name)(comm, x.copy())
    sends = [e for e in comm.tracer.events if e.kind == "p2p" and e.op in SENDS]
    mine = (len(sends), sum(e.sent for e in sends), bool(np.array_equal(y, want)))
    rows.append((name, comm.allgather_obj(mine)))  # every rank's numbers, on every rank

if r == 0:
    print(f"allreduce of {n * 8:,} bytes on {p} ranks: what each rank sent")
    print(f"{'algorithm':<10} {'messages, rank 0..':<20} {'bytes, rank 0..':<32} same as MPI")
    for name, every in rows:
        msgs = " ".join(str(m) for m, _, _ in every)
        sent = " ".join(f"{b:,}" for _, b, _ in every)
        ok = "yes" if all(s for _, _, s in every) else "NO"
        print(f"{name:<10} {msgs:<20} {sent:<32} {ok}")

# file: tutorials/hello_ranks.py
"""Tutorial 4: ranks, point-to-point messages and the communication log.

    mpiexec -n 3 python tutorials/hello_ranks.py
"""

import numpy as np

from minipar.comm.communicator import init

comm = init(trace=True, show_comm=True)  # record every call, and print each as it starts
r, p = comm.rank, comm.size
print(f"hello from rank {r} of {p}", flush=True)

# 1. Point-to-point: rank 0 sends a different message to each other rank.
buf = np.zeros(4)
if r == 0:
    for dst in range(1, p):
        comm.send(np.arange(4.0) * dst, dst, tag=7)
else:
    comm.recv(buf, 0, tag=7)
    print(f"rank {r} got {buf}", flush=True)

# 2. A ring: everyone sends its rank to the right and receives from the left, at once.
mine, left = np.array([float(r)]), np.empty(1)
comm.sendrecv(mine, (r + 1) % p, left, (r - 1) % p, tag=8)
print(f"rank {r}: my left neighbour is {left[0]:.0f}", flush=True)

# 3. One of MPI's own collectives, for comparison: every rank gets the sum of the ranks.
total = comm.allreduce(np.array([float(r)]))
if r == 0:
    print(f"sum of ranks: {total[0]:.0f}", flush=True)

comm.report()  # gather every rank's records to rank 0 and print the table there

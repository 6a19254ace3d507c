"""Run several short trainings in one process (one mpiexec launch) and save each one's final
parameters: ``python train_runs.py OUT_DIR REFERENCE_RANKS JSON_LIST_OF_ARGV``.

With REFERENCE_RANKS = K > 0 (on one process) every global batch is cut into K ranks' rows
exactly as K ranks would cut it, and this one process trains on all of those rows together:
the one-process computation of the same global batch, padding and dropping included.
"""

import json
import os
import sys

import numpy as np

from minipar.training import run as train_setup
from minipar.training.config import parse_args
from minipar.comm.communicator import init
from minipar.training import loop
from minipar.training.loop import train_loop


def main():
    out, ref, runs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    comm = init(trace=True)
    if ref:
        original = loop.shard_rows

        def union_rows(run, batch):
            size = run.comm.size
            run.comm.size = ref  # cut as K ranks would, then keep every rank's rows
            try:
                rows = original(run, batch)
            finally:
                run.comm.size = size
            run._shards.clear()
            return [np.concatenate(rows)]
        train_setup.check_shard_weights = lambda cfg, size: None  # weights are for K ranks
        loop.shard_rows = union_rows
    for i, argv in enumerate(runs):
        cfg = parse_args(argv + ["--out", os.path.join(out, f"run{i}"), "--quiet"])
        run = train_setup.setup(comm, cfg)
        train_loop(run)
        if comm.rank == 0:
            np.savez(os.path.join(out, f"params{i}.npz"), **run.model.state_dict())


if __name__ == "__main__":
    main()

"""Task 8.1: the longest-processing-time-first (LPT) scheduler.

n tasks with costs c_0..c_{n-1} must be shared out over p ranks so that the last rank
finishes as early as possible (the makespan C = max over ranks of the sum of its costs).
No plan beats the lower bound LB = max(sum(c) / p, max(c)).

LPT: sort the tasks by decreasing cost (ties: the lower task index first), then give each
task in turn to the rank with the smallest load so far (ties: the lower rank). Graham
(1969): C_LPT <= (4/3 - 1/(3p)) C_opt. A heap of (load, rank) pairs finds the least-loaded
rank in O(log p).

Every rank computes the plan on its own from the same costs, with no message: the function
must be deterministic.

Grade it:  python -m minipar.check lpt lpt:lpt
Compare:   python -m minipar.schedule --heavy-tail 64 -p 4 --policy all
"""

import heapq  # noqa: F401 - you will want it


def lpt(costs: list[float], p: int) -> list[list[int]]:
    """For each of the p ranks, the list of task indices it runs."""
    # TODO: Task 8.1
    raise NotImplementedError("Task 8.1: write the LPT scheduler (the TODO in lpt.py)")

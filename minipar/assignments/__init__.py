"""Course assignments: stubs to fill in, each graded by ``python -m minipar.check``.

Each tutorial's exercise becomes a task, numbered after its tutorial (Task k.m: tutorial k,
exercise m). A stub holds the function's signature, the formulas it must compute, a
``# TODO: Task k.m`` where the code goes, and the command that grades it:

    task  file                 grade with                                        tutorial
    2.1   kneser_ney.py        python -m minipar.check kneser_ney kneser_ney:estimate_discounts   2
    3.1   lstm_backward.py     python -m minipar.check lstm_backward lstm_backward:backward       3
    5.1   ring_allreduce.py    python -m minipar.check ring_allreduce ring_allreduce:allreduce    5
    5.2   tree_broadcast.py    python -m minipar.check tree_broadcast tree_broadcast:broadcast    5
    6.1   buckets.py           python -m minipar.check buckets buckets:make_buckets               6
    8.1   lpt.py               python -m minipar.check lpt lpt:lpt                                8

Work on a copy, outside the installed package:

    python -m minipar.assignments copy mywork     # the stubs, ready to edit
    cd mywork
    python -m minipar.check ring_allreduce ring_allreduce:allreduce

A finished allreduce also trains: ``mpiexec -n 4 python -m minipar.train --allreduce
ring_allreduce:allreduce``. docs/instructors.md explains how to hand the stubs out and
collect the grader's JSON.
"""

TASKS = {
    "2.1": ("kneser_ney", "kneser_ney.py", "estimate_discounts"),
    "3.1": ("lstm_backward", "lstm_backward.py", "backward"),
    "5.1": ("ring_allreduce", "ring_allreduce.py", "allreduce"),
    "5.2": ("tree_broadcast", "tree_broadcast.py", "broadcast"),
    "6.1": ("buckets", "buckets.py", "make_buckets"),
    "8.1": ("lpt", "lpt.py", "lpt"),
}
"""Task number -> (grader task, stub file, function name)."""

"""Task 2.1: the three discounts of modified Kneser-Ney (Chen and Goodman 1998).

Kneser-Ney takes a little probability mass from every seen n-gram and gives it to the
lower order. How much depends on how often the n-gram was seen: D1 for once, D2 for twice,
D3 for three times or more, estimated from the counts of counts of one order:

    t_j = number of n-grams whose (adjusted) count is exactly j,  j = 1, 2, 3, 4
    Y   = t_1 / (t_1 + 2 t_2)
    D_j = j - (j + 1) Y t_{j+1} / t_j,        j = 1, 2, 3

``a`` holds the adjusted counts of one order (zeros are n-grams not counted: ignore them).
When t_1, t_2 or t_3 is zero, or some D_j falls outside [0, j], the formula cannot be
used: return the fallback discounts (0.5, 1.0, 1.5) and a warning string saying why.
Otherwise return the three discounts and None.

Grade it:  python -m minipar.check kneser_ney kneser_ney:estimate_discounts
Read:      docs/ngram.md
"""

import numpy as np

FALLBACK = (0.5, 1.0, 1.5)


def estimate_discounts(a: np.ndarray, order: int):
    """((D1, D2, D3), warning or None) from the adjusted counts ``a`` of n-grams of ``order``."""
    # TODO: Task 2.1 -- count t_1..t_4 (np.bincount helps), then the formulas above.
    raise NotImplementedError("Task 2.1: estimate the Kneser-Ney discounts (the TODO in "
                              "kneser_ney.py)")

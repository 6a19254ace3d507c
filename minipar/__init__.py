"""minipar: learn how language models are trained in parallel, by building it.

A hand-written autograd engine on NumPy (CuPy on a GPU), language models on it, and
explicit, visible parallelism with mpi4py. See README.md and docs/.
"""

__version__ = "0.2.0"

from minipar.core import threads as _threads

_threads.apply()  # before NumPy loads: one BLAS thread budget per rank (see core/threads.py)


def __getattr__(name):
    """``minipar.keras`` on first use, so ``import minipar as tf; tf.keras.Sequential`` works
    without loading the Keras-style API into every command."""
    if name == "keras":
        import importlib
        return importlib.import_module("minipar.keras")
    raise AttributeError(f"module 'minipar' has no attribute {name!r}")

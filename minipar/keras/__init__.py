"""A Keras-style API on minipar: ``Sequential`` / ``compile`` / ``fit``, in parallel under mpiexec.

    import minipar as tf                       # then tf.keras.Sequential(...) as in TensorFlow
    from minipar import keras                  # or keras.Sequential(...)

What is supported, and every difference from Keras: docs/keras.md. A mistake in the
arguments (a user error) ends the script with one line, ``minipar: error: ...``, and exit
status 2 on every rank, instead of a traceback (``error_hook.py``).
"""

from types import SimpleNamespace

from minipar.keras import callbacks, datasets, layers, losses, optimizers, utils  # noqa: F401
from minipar.keras.distribute import Distribute  # noqa: F401
from minipar.keras.error_hook import install_error_hook
from minipar.keras.sequential import Sequential, load_model
from minipar.keras.settings import floatx, set_floatx

models = SimpleNamespace(Sequential=Sequential, load_model=load_model)
config = SimpleNamespace(floatx=floatx, set_floatx=set_floatx)

install_error_hook()

"""Neural-network building blocks: Module, Parameter, Linear, Embedding, Dropout, LSTM."""

from minipar.nn.basic import Dropout, Embedding, Linear  # noqa: F401
from minipar.nn.lstm import LSTM  # noqa: F401
from minipar.nn.module import Module, Parameter  # noqa: F401

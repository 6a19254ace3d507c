"""Built-in data sets: ``sentiment`` (3,000 labelled review sentences, CC BY 4.0)."""

from minipar.keras.datasets import sentiment  # noqa: F401

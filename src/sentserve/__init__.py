"""sentserve: a REST server for TensorFlow sentence-embedding models."""

__version__ = "0.1.0"

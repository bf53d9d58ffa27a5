"""Import TensorFlow once, quietly, with thread pools sized for this process.

Importing TensorFlow costs ~2 s and must happen after gunicorn forks its workers, so nothing
imports it at module level: call `tensorflow()` where it is needed.
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType
from typing import Any


@cache
def tensorflow() -> ModuleType:
    os.environ.setdefault(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # TF's C++ INFO/WARNING lines, not the user's
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # e.g. the V1-checkpoint deprecation banner on every load
    return tf


def default_thread_counts(cores: int, workers: int) -> tuple[int, int]:
    """(intra, inter) op threads: share the cores among workers; one inter-op thread per batch
    runner is enough since each model runs one batch at a time."""
    intra = max(1, cores // max(1, workers))
    return intra, 1


def session_config(intra: int, inter: int) -> Any:
    tf = tensorflow()
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra,
        inter_op_parallelism_threads=inter,
        allow_soft_placement=True,
    )


@cache
def configure_eager_threads(intra: int, inter: int) -> None:
    """Eager (SavedModel) thread pools are process-wide and fixed once TF starts: set them once."""
    tf = tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        pass  # already initialised (a second registry in the same process): keep the first

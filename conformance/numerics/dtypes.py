"""Dtype names as the suite spells them ("bfloat16", "float32", ...) to NumPy dtypes."""

from __future__ import annotations

import ml_dtypes
import numpy as np


def np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)

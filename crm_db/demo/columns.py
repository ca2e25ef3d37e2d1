"""Small helpers for building object (text) columns with numpy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt


def objects(values: Iterable[Any]) -> npt.NDArray[np.object_]:
    """A 1-d object array (numpy would otherwise pick a fixed-width string dtype)."""
    return np.array(list(values), dtype=object)


def none_where(mask: npt.NDArray[np.bool_], values: Any) -> npt.NDArray[np.object_]:
    """``values`` with NULL (None) where ``mask`` is true; ``values`` may be a scalar."""
    out = np.empty(len(mask), dtype=object)
    out[:] = values
    out[mask] = None
    return out

"""How the evaluation tables, the sample grids and the cards name their rows and columns.

A leaf module: the card (which the models use to write their README) and the evaluation
(which loads models) both read these names, so they live apart from either.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from .metrics.functional import HUE_CLASSES

GRAY_BASELINE = "gray"
# The row (and grid column) of the shipped default model, named by no --model.
DEFAULT_ROW = "default"
# The first and last columns of the sample grid, around one column per model.
GRID_INPUT, GRID_ORIGINAL = "gray input", "original"
# The per-class hue recalls, in HUE_CLASSES order, shown together in one column.
HUE_CLASS_KEYS = tuple(f"hue_recall_{name}" for name in HUE_CLASSES)
HUE_CLASSES_TITLE = "/".join(name[0] for name in HUE_CLASSES) + " %"  # "r/y/g/b/p %"


def format_hue_classes(row: dict) -> str:
    """The per-class hue recalls of a result row in one compact cell, in percent: "62/10/55/31/-" (- for no such pixels)."""
    values = [row.get(key, math.nan) for key in HUE_CLASS_KEYS]
    return "/".join("-" if value is None or math.isnan(value) else f"{100 * value:.0f}" for value in values)


def row_name(model: str | None) -> str:
    """How the evaluation tables (and the card's sample grid) call a model: its name or path as given, or "default"."""
    return str(model) if model is not None else DEFAULT_ROW


def grid_legend(model: str | None, compare: Sequence = ()) -> str:
    """The columns of :func:`sample_grid` for ``model`` after ``compare``, as "gray input | A | B | original"."""
    return " | ".join([GRID_INPUT, *(row_name(m) for m in compare), row_name(model), GRID_ORIGINAL])


def sample_rule(folder: str | os.PathLike, count: int) -> str:
    """The rule :func:`sample_files` picks photos by, in words."""
    return f"every k-th photo of {folder} in sorted order, {count} photos"

"""How the evaluation tables, the sample grids and the cards name their rows and columns.

A leaf module: the card (which the models use to write their README) and the evaluation
(which loads models) both read these names, so they live apart from either.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from .metrics.functional import HUE_CLASSES, HUE_MIN_PIXELS

GRAY_BASELINE = "gray"
# The row (and grid column) of the shipped default model, named by no --model.
DEFAULT_ROW = "default"
# The first and last columns of the sample grid, around one column per model.
GRID_INPUT, GRID_ORIGINAL = "gray input", "original"
# The per-class hue recalls, in HUE_CLASSES order, shown together in one column.
HUE_CLASS_KEYS = tuple(f"hue_recall_{name}" for name in HUE_CLASSES)
HUE_CLASSES_TITLE = "/".join(name[0] for name in HUE_CLASSES) + " %"  # "r/y/g/b/p %"


def undefined(value: object) -> bool:
    """A result that every table shows as "-": missing (a file written before the metric existed) or nan
    (undefined, e.g. the gray row's hue precision)."""
    return value is None or (isinstance(value, (int, float)) and math.isnan(value))


def format_hue_classes(row: dict) -> str:
    """The per-class hue recalls of a result row in one compact cell, in percent: "62/10/55/31/-".

    "-" marks a class left out of the hue recall mean (HUE_MIN_PIXELS truth pixels or fewer,
    none at all included): a 0 there would read as a class the model missed. The row's own
    values (the JSON) are not changed.
    """
    cells = []
    for name, key in zip(HUE_CLASSES, HUE_CLASS_KEYS):
        value = row.get(key, math.nan)
        # Rows written before the pixel counts were recorded show every class with a value.
        excluded = row.get(f"hue_truth_pixels_{name}", math.inf) <= HUE_MIN_PIXELS
        cells.append("-" if undefined(value) or excluded else f"{100 * value:.0f}")
    return "/".join(cells)


def row_name(model: str | None) -> str:
    """How the evaluation tables (and the card's sample grid) call a model: its name or path as given, or "default"."""
    return str(model) if model is not None else DEFAULT_ROW


def grid_legend(model: str | None, compare: Sequence = ()) -> str:
    """The columns of :func:`sample_grid` for ``model`` after ``compare``, as "gray input | A | B | original"."""
    return " | ".join([GRID_INPUT, *(row_name(m) for m in compare), row_name(model), GRID_ORIGINAL])


def sample_rule(folder: str | os.PathLike, count: int) -> str:
    """The rule :func:`sample_files` picks photos by, in words."""
    return f"every k-th photo of {folder} in sorted order, {count} photos"

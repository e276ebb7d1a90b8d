"""Score colorization models on colour photos through the user pipeline, with `evaluate`.

Each photo is turned gray, colorized at full resolution by :func:`colorgan_hf.colorize`
(exactly what users get), and compared with the original. A ``gray`` baseline row (the
photo with its chroma removed) stands beside the models.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .color import lab_to_rgb, rgb_to_lab
from .data import open_stored
from .errors import ColorGANError, ImageLoadError
from .files import write_atomic
from .images import find_images, load_image
from .metrics.functional import (CONFUSION_LABELS, HUE_CLASS_LABELS, HUE_MIN_PIXELS, PRED_CHROMA_MIN, SSIM_WINDOW,
                                 TRUTH_CHROMA_MIN)
from .metrics.modules import load_metric, to_array
from .pipeline import DEFAULT_SIZE, MAX_SIZE, colorize, warn_if_vividness_ignored
from .registry import load_model
from .tables import GRAY_BASELINE, HUE_CLASSES_TITLE, format_hue_classes, row_name, undefined  # noqa: F401 (format_hue_classes: public here too)

logger = logging.getLogger(__name__)
# Table columns: (result key, header, format string or a function of the whole row).
COLUMNS = (
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("ciede2000", "CIEDE2000", "{:.2f}"),
    ("colorfulness_pred", "colorful", "{:.1f}"),
    ("colorfulness_ratio", "ratio", "{:.2f}"),
    ("a_shift", "a* shift", "{:+.2f}"),
    ("b_shift", "b* shift", "{:+.2f}"),
    ("ab_auc", "AuC", "{:.4f}"),
    ("mse_weighted_mean", "paper MSE", "{:.5f}"),
    ("hue_recall", "hue rec", "{:.3f}"),
    ("hue_recall_*", HUE_CLASSES_TITLE, format_hue_classes),
    ("hue_precision", "hue prec", "{:.3f}"),
    ("ab_hist", "ab hist", "{:.3f}"),
)
TABLE_LEGEND = (
    f"hue rec: hue recall pooled over the set, mean over the classes with > {HUE_MIN_PIXELS} truth pixels of chroma >= "
    f"{TRUTH_CHROMA_MIN:g}; {HUE_CLASSES_TITLE}: per class ({', '.join(HUE_CLASS_LABELS)}; -: left out of the mean); "
    f"hue prec: hue precision of predicted pixels with chroma >= {PRED_CHROMA_MIN:g}; ab hist: a*b* histogram intersection; "
    "any other -: undefined (the gray row paints no colour)."
)


def iter_references(data: str, limit: int | None = None) -> Iterator[tuple[str, torch.Tensor | Exception]]:
    """(name, (3, H, W) RGB in [0, 1]) for each colour photo of a folder, a saved pair set or a Hub dataset.

    A photo that cannot be read gives (name, the error) in its place: one bad photo is
    that photo's error, the others still run.
    """
    if limit is not None and limit < 1:
        raise ColorGANError(f"--limit must be at least 1, got {limit}")
    path = Path(data)
    if path.is_dir() and not (path / "dataset_dict.json").exists() and not (path / "dataset_info.json").exists():
        files = find_images(path)
        if not files:
            raise ColorGANError(f"{data}: no images found")
        for file in files[:limit]:
            name = str(file.relative_to(path))
            try:
                yield name, load_image(file).rgb
            except ColorGANError as error:
                yield name, error
        return
    import datasets

    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            table = loaded["test"] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            table = datasets.load_dataset(data, split="test")
    except Exception as error:
        raise ColorGANError(f"{data}: not a folder of images, a saved pair set or a loadable dataset ({error})") from None
    column = "color" if "color" in table.column_names else "image"
    if isinstance(table.features.get(column), datasets.Image):
        # Decoded here, one row at a time, so that a corrupt row is that row's error.
        table = table.cast_column(column, datasets.Image(decode=False))
    for index in range(len(table) if limit is None else min(limit, len(table))):
        name = f"{data}[{index}]"
        try:
            value = table[index][column]
            if isinstance(value, dict):
                value = open_stored(value)
            yield name, load_image(value).rgb
        except (ColorGANError, OSError, ValueError, SyntaxError, EOFError) as error:
            yield name, ImageLoadError(f"{name}: cannot be decoded ({type(error).__name__}: {error})")


def score_size(array: np.ndarray) -> np.ndarray:
    """An (H, W, 3) image with a side under the SSIM window, enlarged by the smallest whole factor
    (nearest neighbour) that makes it fit: every per-pixel metric keeps its value, SSIM becomes defined."""
    side = min(array.shape[:2])
    if side >= SSIM_WINDOW:
        return array
    factor = math.ceil(SSIM_WINDOW / side)
    return np.ascontiguousarray(array.repeat(factor, axis=0).repeat(factor, axis=1))


def gray_baseline(rgb: torch.Tensor) -> torch.Tensor:
    """The photo with its chroma removed: Lab with a* = b* = 0."""
    lab = rgb_to_lab(rgb[None])
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))[0]


def evaluate_models(models: Sequence[str | None], data: str, size: int = DEFAULT_SIZE, limit: int | None = None,
                    progress: bool = True, saturation: float = 1.0, vividness: float | None = None) -> dict:
    """Score each model (and the gray baseline) on every photo of ``data``.

    ``saturation`` is the pipeline's chroma multiplier (as in :func:`colorize`), applied to
    every model row: it measures the trade between colourfulness and colour error.

    A photo that cannot be read or scored is that photo's error: a warning, and an entry of
    ``failed`` ({photo: reason}); the others still run and ``images`` counts those scored.
    Photos with a side under the SSIM window (11 px) are scored at a whole-number
    nearest-neighbour enlargement (:func:`score_size`).

    Returns ``{"data", "images", "failed", "size", "saturation", "truth_colorfulness", "rows": {name: {metric: value}}}``.
    Each row holds the means over photos (psnr, ssim, ciede2000, colorfulness_pred/_true/_ratio,
    a_shift, b_shift, ab_auc, mse, mse_weighted_mean, mse_per_batch) and the set metrics pooled
    over every pixel: hue_recall (mean over classes with > 1,000 counted truth pixels),
    hue_recall_<class> and hue_truth_pixels_<class> for red, yellow, green, blue, purple,
    hue_precision and ab_hist (see :class:`colorgan_hf.metrics.functional.PooledColorStats`;
    nan where undefined, e.g. hue_precision of the gray row).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ColorGANError(f"--limit must be a whole number of photos, at least 1; got {limit}")
    names = [GRAY_BASELINE] + [row_name(m) for m in models]
    generators = {name: load_model(model) for name, model in zip(names[1:], models)}
    for name, generator in generators.items():
        warn_if_vividness_ignored(generator, vividness, name)
        stride = getattr(generator, "stride", 1)
        # Checked once here: below the stride every photo would fail, one warning each.
        if getattr(generator, "input_size", None) is None and not stride <= size <= MAX_SIZE:
            raise ColorGANError(f"--size must be between the model's stride {stride} and {MAX_SIZE} for {name}, got {size}")
    # One module per row; each loads once (evaluate.load copies the module script). The
    # colorization module converts each photo to Lab once, for the per-photo and the pooled metrics.
    metrics = {name: load_metric("colorization") for name in names}
    count, failed = 0, {}
    for name, reference in tqdm(iter_references(data, limit), desc="Evaluating", unit="img", disable=not progress):
        try:
            if isinstance(reference, Exception):
                raise reference
            # Everything is scored as the 8-bit images a user would see and save.
            gray_input = to_array(gray_baseline(reference))  # (H, W, 3) uint8
            reference_image = score_size(to_array(reference))
            outputs = {GRAY_BASELINE: gray_input}
            for row, generator in generators.items():
                outputs[row] = np.asarray(colorize(gray_input, generator, size=size, saturation=saturation, vividness=vividness))
            # Every row's output first, then all rows at once: a photo counts in every row or in none.
            outputs = {row: score_size(output) for row, output in outputs.items()}
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # one photo's problem (unreadable, or any failure on it) is that photo's error
            failed[name] = str(error) if isinstance(error, ColorGANError) else f"{type(error).__name__}: {error}"
            logger.warning(f"{name}: skipped ({failed[name]})")
            continue
        for row, output in outputs.items():
            metrics[row].add(predictions=output, references=reference_image)
        count += 1
    if not count:
        raise ColorGANError(f"{data}: no images to evaluate" + (f" ({len(failed)} could not be scored)" if failed else ""))
    rows = {}
    for name in names:
        rows[name] = metrics[name].compute()
    truth = rows[GRAY_BASELINE]["colorfulness_true"]
    return {"data": data, "images": count, "failed": failed, "size": size, "saturation": saturation, "vividness": vividness,
            "truth_colorfulness": truth, "rows": rows}


def sample_files(folder: str | os.PathLike, count: int) -> list[Path]:
    """Every k-th photo of ``folder`` in sorted order, k = n // count: a fixed rule, not a hand pick."""
    files = find_images(folder)
    if not files:
        raise ColorGANError(f"{folder}: no images found")
    step = max(len(files) // count, 1)
    return files[::step][:count]


def sample_grid(model, folder: str | os.PathLike, count: int = 12, size: int = DEFAULT_SIZE, tile: int = 256,
                compare: Sequence = ()):
    """A grid of gray input | colorized (by each of ``compare``, then ``model``) | original rows
    (:func:`grid_legend`) for :func:`sample_files`, as a PIL image."""
    from PIL import Image

    generators = [load_model(m) for m in (*compare, model)]
    rows = []
    for file in sample_files(folder, count):
        original = load_image(file).rgb
        gray = to_array(gray_baseline(original))
        colorized = [np.asarray(colorize(gray, generator, size=size)) for generator in generators]
        cells = [Image.fromarray(a) for a in (gray, *colorized, to_array(original))]
        scale = tile / cells[0].height
        rows.append([c.resize((max(1, round(c.width * scale)), tile), Image.Resampling.BICUBIC) for c in cells])
    width = max(sum(c.width for c in row) for row in rows)
    grid = Image.new("RGB", (width, tile * len(rows)), "white")
    for y, row in enumerate(rows):
        x = 0
        for cell in row:
            grid.paste(cell, (x, y * tile))
            x += cell.width
    return grid


def _cell(row: dict, key: str, fmt) -> str:
    if callable(fmt):
        return fmt(row)
    value = row.get(key)
    return "-" if undefined(value) else fmt.format(value)


def _aligned(header: list[str], lines: list[list[str]]) -> list[str]:
    """``header``, a rule and ``lines`` as text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    render = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return [render(header), render(["-" * w for w in widths]), *(render(line) for line in lines)]


def format_table(result: dict) -> str:
    """The result of :func:`evaluate_models` as an aligned text table, with a legend of the set metrics."""
    header = ["model"] + [title for _, title, _ in COLUMNS]
    lines = [[name] + [_cell(row, key, fmt) for key, _, fmt in COLUMNS] for name, row in result["rows"].items()]
    shown = f", saturation {result['saturation']:g}" if result["saturation"] != 1.0 else ""
    shown += f", vividness {result['vividness']:g}" if result.get("vividness") is not None else ""
    out = [f"{result['data']}: {result['images']} images, working size {result['size']}{shown}, "
           f"true colourfulness {result['truth_colorfulness']:.1f}", *_aligned(header, lines)]
    out.append(TABLE_LEGEND)
    failed = result.get("failed") or {}
    if failed:
        out.append(f"{len(failed)} photo(s) could not be scored and are not in the table:")
        out += [f"  {name}: {reason}" for name, reason in failed.items()]
    return "\n".join(out)


def format_confusion(result: dict) -> str:
    """Where each truth colour went, for every row of :func:`evaluate_models`'s result that has
    ``hue_confusion``: per truth class (and "neutral", truth chroma under 15), the share of its
    pixels painted in each class (and "neutral", predicted chroma under 8); a last line, per
    painted class, the share of those pixels whose truth is that class (its precision)."""
    header = ["truth", *CONFUSION_LABELS, "pixels"]
    out = []
    for name, row in result["rows"].items():
        counts = row.get("hue_confusion")
        if counts is None or name == GRAY_BASELINE:
            continue  # a result saved before this existed; the gray row paints nothing
        counts = np.asarray(counts, dtype=np.float64)
        totals, painted = counts.sum(1), counts.sum(0)
        lines = [[label, *(f"{c / total:.2f}" if total else "-" for c in line), f"{int(total):,}"]
                 for label, line, total in zip(CONFUSION_LABELS, counts, totals)]
        lines.append(["precision", *(f"{counts[j, j] / painted[j]:.2f}" if painted[j] else "-" for j in range(len(CONFUSION_LABELS) - 1)),
                      "", f"{int(painted[:-1].sum()):,}"])
        out += ["", f"{name}: where each truth colour went (rows: the truth's class; columns: the class painted, as shares of the row)",
                *_aligned(header, lines)]
    return "\n".join(out).lstrip("\n")


def save_json(result: dict, path: str | os.PathLike) -> None:
    write_atomic(path, json.dumps(result, indent=2))

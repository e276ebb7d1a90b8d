"""Score colorization models on colour photos through the user pipeline, with `evaluate`.

Each photo is turned gray, colorized at full resolution by :func:`colorgan_hf.colorize`
(exactly what users get), and compared with the original. A ``gray`` baseline row (the
photo with its chroma removed) stands beside the models.
"""

from __future__ import annotations

import json
import math
import os
from itertools import islice
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .color import lab_to_rgb, rgb_to_lab
from .errors import ColorGANError
from .images import find_images, load_image
from .metrics.modules import load_metric, to_array
from .pipeline import DEFAULT_SIZE, colorize
from .registry import load_model

GRAY_BASELINE = "gray"
# Table columns: (result key, header, format).
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
)


def iter_references(data: str, limit: int | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, (3, H, W) RGB in [0, 1]) for each colour photo of a folder, a saved pair set or a Hub dataset."""
    path = Path(data)
    if path.is_dir() and not (path / "dataset_dict.json").exists() and not (path / "dataset_info.json").exists():
        files = find_images(path)
        if not files:
            raise ColorGANError(f"{data}: no images found")
        for file in files[:limit]:
            yield str(file.relative_to(path)), load_image(file).rgb
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
    for index, row in enumerate(islice(table, limit)):
        yield f"{data}[{index}]", load_image(row[column]).rgb


def gray_baseline(rgb: torch.Tensor) -> torch.Tensor:
    """The photo with its chroma removed: Lab with a* = b* = 0."""
    lab = rgb_to_lab(rgb[None])
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))[0]


def evaluate_models(models: Sequence[str | None], data: str, size: int = DEFAULT_SIZE, limit: int | None = None,
                    progress: bool = True, saturation: float = 1.0) -> dict:
    """Score each model (and the gray baseline) on every photo of ``data``.

    ``saturation`` is the pipeline's chroma multiplier (as in :func:`colorize`), applied to
    every model row: it measures the trade between colourfulness and colour error.

    Returns ``{"data", "images", "size", "saturation", "truth_colorfulness", "rows": {name: {metric: value}}}``.
    """
    names = [GRAY_BASELINE] + [str(m) if m is not None else "default" for m in models]
    generators = {name: load_model(model) for name, model in zip(names[1:], models)}
    # One module per row; each loads once (evaluate.load copies the module script).
    metrics = {name: load_metric("colorization") for name in names}
    count = 0
    for _, reference in tqdm(iter_references(data, limit), desc="Evaluating", unit="img", disable=not progress):
        # Everything is scored as the 8-bit images a user would see and save.
        gray_input = to_array(gray_baseline(reference))  # (H, W, 3) uint8
        reference_image = to_array(reference)
        outputs = {GRAY_BASELINE: gray_input}
        for name, generator in generators.items():
            outputs[name] = np.asarray(colorize(gray_input, generator, size=size, saturation=saturation))
        for name, output in outputs.items():
            metrics[name].add(predictions=output, references=reference_image)
        count += 1
    if not count:
        raise ColorGANError(f"{data}: no images to evaluate")
    rows = {}
    for name in names:
        rows[name] = metrics[name].compute()
    truth = rows[GRAY_BASELINE]["colorfulness_true"]
    return {"data": data, "images": count, "size": size, "saturation": saturation, "truth_colorfulness": truth, "rows": rows}


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
    for :func:`sample_files`, as a PIL image."""
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


def format_table(result: dict) -> str:
    """The result of :func:`evaluate_models` as an aligned text table."""
    header = ["model"] + [title for _, title, _ in COLUMNS]
    lines = [[name] + [fmt.format(row[key]) if not (isinstance(row[key], float) and math.isnan(row[key])) else "nan"
                       for key, _, fmt in COLUMNS] for name, row in result["rows"].items()]
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    render = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    shown = f", saturation {result['saturation']:g}" if result["saturation"] != 1.0 else ""
    out = [f"{result['data']}: {result['images']} images, working size {result['size']}{shown}, "
           f"true colourfulness {result['truth_colorfulness']:.1f}", render(header), render(["-" * w for w in widths])]
    out += [render(line) for line in lines]
    return "\n".join(out)


def save_json(result: dict, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(result, indent=2))

"""Shared pieces of the `evaluate` metric modules, and :func:`load_metric` to load them offline.

The Hub's metric scripts cannot be downloaded where this package must work, so each metric
ships as a local module file beside this one; ``evaluate.load`` takes its path.
"""

from __future__ import annotations

from pathlib import Path

import evaluate
import numpy as np
import torch

from colorgan_hf.metrics.functional import PooledColorStats

METRICS_DIR = Path(__file__).parent
# "colorization" (all of them in one pass) stays last.
METRIC_NAMES = ("psnr", "ssim", "ciede2000", "colorfulness", "ab_shift", "ab_auc", "paper_mse",
                "hue_recall", "hue_precision", "ab_hist", "colorization")


def image_features():
    """Both columns hold images; `datasets` encodes them on the way in and decodes to PIL."""
    import datasets

    return datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()})


def to_array(image) -> np.ndarray:
    """PIL image, HxWx3 uint8 array or 3xHxW float tensor in [0, 1] -> HxWx3 uint8 array."""
    if isinstance(image, torch.Tensor):
        return image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got an array {array.dtype} {array.shape}")
    return array


def to_batch(images) -> torch.Tensor:
    """A list of same-sized images -> (B, 3, H, W) float in [0, 1]."""
    arrays = [to_array(i) for i in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def load_metric(name: str):
    """``evaluate.load`` of one of the shipped metric modules, offline."""
    import evaluate

    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(METRIC_NAMES)}")
    return evaluate.load(str(METRICS_DIR / f"{name}.py"))


INPUTS_DESCRIPTION = (
    "predictions: colorized images; references: the true colour images, pairwise of the same size. "
    "Each a PIL image, an HxWx3 uint8 array or a 3xHxW float tensor in [0, 1]."
)


def check_pairs(predictions, references) -> None:
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need as many predictions as references, and at least one (got {len(predictions)} and {len(references)})")


class ImageMetric(evaluate.Metric):
    """Base of the shipped metrics: scores each (prediction, reference) pair with
    :meth:`score` (per-image values) and averages over images in :meth:`summarize`."""

    description = ""
    citation = ""

    def _info(self):
        return evaluate.MetricInfo(description=self.description, citation=self.citation,
                                   inputs_description=INPUTS_DESCRIPTION, features=image_features())

    def score(self, prediction: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def summarize(self, per_image: list[dict[str, float]], **kwargs) -> dict[str, float]:
        return {key: float(np.mean([row[key] for row in per_image])) for key in per_image[0]}

    def _compute(self, predictions, references, **kwargs):
        check_pairs(predictions, references)
        per_image = [self.score(to_batch([p]), to_batch([r])) for p, r in zip(predictions, references)]
        return self.summarize(per_image, **kwargs)


class PooledImageMetric(ImageMetric):
    """Base of the set metrics: pixel counts pooled over every pair given to ``add``/``add_batch``
    (in any number of calls), scored once at the end by :meth:`select` of the pooled counts."""

    def select(self, stats: PooledColorStats) -> dict[str, float]:
        raise NotImplementedError

    def _compute(self, predictions, references, **kwargs):
        check_pairs(predictions, references)
        stats = PooledColorStats()
        for prediction, reference in zip(predictions, references):
            stats.add_rgb(to_batch([prediction]), to_batch([reference]))
        return self.select(stats)

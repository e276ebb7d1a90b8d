"""Colorization metrics on batches of RGB images, in torch.

Every per-image function takes ``prediction`` and ``reference`` as (B, 3, H, W) sRGB in
[0, 1] and returns one value per image, shape (B,), so callers can average, weight or batch
them. The `evaluate` modules beside this file wrap them; `colorgan evaluate` uses them too.

The set metrics at the end (hue recall and precision, ab histogram intersection) are pooled
over a whole eval set, not averaged per image: :class:`PooledColorStats` accumulates their
counts from CIELAB batches, and :func:`pooled_color_metrics` (or :func:`hue_recall`,
:func:`hue_precision`, :func:`ab_hist`) scores a list or batch of RGB images at once.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from kornia.metrics import psnr as _kornia_psnr
from kornia.metrics import ssim as _kornia_ssim

from ..color import rgb_to_lab

# PSNR of identical images is infinite; tables report this cap instead.
PSNR_CAP_DB = 100.0
# SSIM's Gaussian window (Wang et al. 2004).
SSIM_WINDOW = 11
# Hasler & Suesstrunk (2003): colourfulness = sigma_rgyb + 0.3 * mu_rgyb, on 0..255 values.
COLORFULNESS_MEAN_WEIGHT = 0.3
RGB_MAX = 255.0
# Zhang et al. (2016): area under the curve of the fraction of pixels whose ab error is
# within a threshold, thresholds 0..150 in Lab units.
AUC_MAX_THRESHOLD = 150

# Hue classes of the CIELAB hue angle h = atan2(b*, a*) in degrees, taken in [-25, 335) so
# that h >= 335 wraps to red: red [-25, 45), orange/yellow [45, 110), green [110, 170),
# cyan/blue [170, 310), purple [310, 335).
HUE_CLASSES = ("red", "yellow", "green", "blue", "purple")  # the names in the result keys
HUE_CLASS_LABELS = ("red", "orange/yellow", "green", "cyan/blue", "purple")  # and in words
HUE_EDGES = (-25.0, 45.0, 110.0, 170.0, 310.0, 335.0)
# A truth pixel counts when its chroma is at least this; a predicted pixel when at least PRED_CHROMA_MIN.
TRUTH_CHROMA_MIN = 15.0
PRED_CHROMA_MIN = 8.0
# hue_recall (the mean) averages the classes with more than this many counted truth pixels.
HUE_MIN_PIXELS = 1000
# hue_confusion's rows and columns: the hue classes, then "neutral" (truth under TRUTH_CHROMA_MIN,
# a prediction under PRED_CHROMA_MIN).
CONFUSION_LABELS = (*HUE_CLASSES, "neutral")
# ab histograms: AB_HIST_BINS x AB_HIST_BINS bins over [-AB_HIST_RANGE, AB_HIST_RANGE] in a* and b*;
# values outside go into the edge bins.
AB_HIST_BINS = 22
AB_HIST_RANGE = 110.0


def _check(prediction: torch.Tensor, reference: torch.Tensor) -> None:
    if prediction.shape != reference.shape or prediction.ndim != 4 or prediction.shape[1] != 3:
        raise ValueError(f"expected two (B, 3, H, W) batches of the same shape, got {tuple(prediction.shape)} and {tuple(reference.shape)}")


def mse(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean squared error of RGB in [0, 1], per image (the paper's generator loss)."""
    _check(prediction, reference)
    return (prediction.float() - reference.float()).pow(2).flatten(1).mean(1)


def psnr(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of RGB in [0, 1], per image, capped at PSNR_CAP_DB."""
    _check(prediction, reference)
    values = torch.stack([_kornia_psnr(p.float(), r.float(), 1.0) for p, r in zip(prediction, reference)])
    return values.nan_to_num(posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB)


def ssim(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity (11x11 Gaussian window), averaged over RGB channels, per image."""
    _check(prediction, reference)
    return _kornia_ssim(prediction.float(), reference.float(), SSIM_WINDOW).flatten(1).mean(1)


def ciede2000_map(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) of Lab (B, 3, H, W) -> (B, H, W)."""
    l1, a1, b1 = lab1.float().unbind(1)
    l2, a2, b2 = lab2.float().unbind(1)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    h1p = torch.where(c1p == 0, torch.zeros_like(h1p), h1p)
    h2p = torch.where(c2p == 0, torch.zeros_like(h2p), h2p)

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(c1p * c2p == 0, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh / 2))

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where(
        c1p * c2p == 0,
        h_sum,
        torch.where((h1p - h2p).abs() <= 180, h_sum / 2, torch.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)),
    )
    t = (1 - 0.17 * torch.cos(torch.deg2rad(h_mean - 30)) + 0.24 * torch.cos(torch.deg2rad(2 * h_mean))
         + 0.32 * torch.cos(torch.deg2rad(3 * h_mean + 6)) - 0.20 * torch.cos(torch.deg2rad(4 * h_mean - 63)))
    d_theta = 30 * torch.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    de = torch.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dc / s_c) * (dH / s_h))
    return de.float()


def ciede2000(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 difference over the pixels of each image."""
    _check(prediction, reference)
    return ciede2000_map(rgb_to_lab(prediction.float()), rgb_to_lab(reference.float())).flatten(1).mean(1)


def colorfulness(image: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness of (B, 3, H, W) RGB in [0, 1], on the 0..255 scale."""
    r, g, b = (image.float() * RGB_MAX).unbind(1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    sigma = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False))
    mu = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return sigma + COLORFULNESS_MEAN_WEIGHT * mu


def ab_shift(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean (a*, b*) of prediction minus reference, per image: (B, 2). A negative b* shift is a blue bias."""
    _check(prediction, reference)
    diff = rgb_to_lab(prediction.float())[:, 1:] - rgb_to_lab(reference.float())[:, 1:]
    return diff.flatten(2).mean(2)


def ab_auc(prediction: torch.Tensor, reference: torch.Tensor, max_threshold: int = AUC_MAX_THRESHOLD) -> torch.Tensor:
    """Area under the curve of P(ab error <= t) for t = 0..max_threshold, normalised to [0, 1]."""
    _check(prediction, reference)
    return _ab_auc_from_error(_ab_error(rgb_to_lab(prediction.float()), rgb_to_lab(reference.float())), max_threshold)


def _ab_error(lab_pred: torch.Tensor, lab_true: torch.Tensor) -> torch.Tensor:
    return (lab_pred[:, 1:] - lab_true[:, 1:]).norm(dim=1).flatten(1)  # (B, N)


def _ab_auc_from_error(error: torch.Tensor, max_threshold: int) -> torch.Tensor:
    # For integer t, error <= t exactly when ceil(error) <= t: one histogram gives every t.
    bins = error.ceil().clamp_(max=max_threshold + 1).long()
    counts = torch.stack([torch.bincount(row, minlength=max_threshold + 2)[: max_threshold + 1] for row in bins])
    within = counts.cumsum(1).float() / error.shape[1]  # (B, T): P(error <= t)
    thresholds = torch.arange(0, max_threshold + 1, dtype=within.dtype, device=within.device)
    return torch.trapezoid(within, thresholds, dim=1) / max_threshold


def all_metrics(prediction: torch.Tensor, reference: torch.Tensor, pooled: PooledColorStats | None = None) -> dict[str, torch.Tensor]:
    """Every per-image metric of this module at once, converting to Lab only once.

    With ``pooled``, the same Lab batches are also added to it (the set metrics' counts).
    """
    _check(prediction, reference)
    prediction, reference = prediction.float(), reference.float()
    lab_pred, lab_true = rgb_to_lab(prediction), rgb_to_lab(reference)
    if pooled is not None:
        pooled.add(lab_pred, lab_true)
    shift = (lab_pred[:, 1:] - lab_true[:, 1:]).flatten(2).mean(2)
    return {
        "psnr": psnr(prediction, reference),
        "ssim": ssim(prediction, reference),
        "ciede2000": ciede2000_map(lab_pred, lab_true).flatten(1).mean(1),
        "colorfulness_pred": colorfulness(prediction),
        "colorfulness_true": colorfulness(reference),
        "a_shift": shift[:, 0],
        "b_shift": shift[:, 1],
        "ab_auc": _ab_auc_from_error(_ab_error(lab_pred, lab_true), AUC_MAX_THRESHOLD),
        "mse": mse(prediction, reference),
    }


def batch_weighted_mean(values: list[float], sizes: list[int]) -> float:
    """The paper's Table 2 'weighted mean': batch values weighted by batch size."""
    total = sum(sizes)
    if not total:
        return math.nan
    return sum(v * n for v, n in zip(values, sizes)) / total


# ------------------------------------------------------------------------------------------
# Set metrics, pooled over every pixel of an eval set: counts accumulate batch by batch.
# ------------------------------------------------------------------------------------------


def chroma(lab: torch.Tensor) -> torch.Tensor:
    """C* = sqrt(a*^2 + b*^2) of Lab (B, 3, H, W) -> (B, H, W)."""
    return torch.hypot(lab[:, 1].float(), lab[:, 2].float())


def hue_angle(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB hue angle atan2(b*, a*) in degrees, in [-25, 335) (see HUE_EDGES), of Lab (B, 3, H, W) -> (B, H, W)."""
    h = torch.rad2deg(torch.atan2(lab[:, 2].double(), lab[:, 1].double()))  # (-180, 180]
    low = HUE_EDGES[0]
    return torch.remainder(h - low, 360.0) + low


def hue_class(lab: torch.Tensor) -> torch.Tensor:
    """Index into HUE_CLASSES of each pixel's hue angle, Lab (B, 3, H, W) -> (B, H, W) int64."""
    h = hue_angle(lab)
    inner = torch.tensor(HUE_EDGES[1:-1], dtype=h.dtype, device=h.device)
    return torch.bucketize(h, inner, right=True)  # edges[i] <= h < edges[i + 1] -> i


def hue_counts(lab_pred: torch.Tensor, lab_true: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hue-class pixel counts of one Lab batch, each (len(HUE_CLASSES),) int64:

    ``truth``: truth pixels with chroma >= TRUTH_CHROMA_MIN, by their class;
    ``hit``: those whose prediction has chroma >= PRED_CHROMA_MIN and the same class;
    ``pred``: predicted pixels with chroma >= PRED_CHROMA_MIN, by their class;
    ``confusion``: every pixel, (len(CONFUSION_LABELS),) * 2, row its truth's class, column its
    prediction's, "neutral" (the last) where under the chroma threshold.
    """
    if lab_pred.shape != lab_true.shape or lab_pred.ndim != 4 or lab_pred.shape[1] != 3:
        raise ValueError(f"expected two Lab (B, 3, H, W) batches of the same shape, got {tuple(lab_pred.shape)} and {tuple(lab_true.shape)}")
    k = len(HUE_CLASSES)
    # Below its chroma threshold a pixel is "neutral", index k.
    row = torch.where(chroma(lab_true) >= TRUTH_CHROMA_MIN, hue_class(lab_true), k)
    column = torch.where(chroma(lab_pred) >= PRED_CHROMA_MIN, hue_class(lab_pred), k)
    confusion = torch.bincount((row * (k + 1) + column).flatten(), minlength=(k + 1) ** 2).reshape(k + 1, k + 1).cpu()
    return {"confusion": confusion, **_class_counts(confusion)}


def _class_counts(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """``truth``, ``hit`` and ``pred`` (see :func:`hue_counts`) from the confusion counts."""
    k = len(HUE_CLASSES)
    return {"truth": confusion[:k].sum(1), "hit": confusion.diagonal()[:k].clone(), "pred": confusion[:, :k].sum(0)}


def ab_histograms(lab: torch.Tensor) -> torch.Tensor:
    """Per-image a*b* histograms of Lab (B, 3, H, W) -> (B, AB_HIST_BINS, AB_HIST_BINS) float64, each summing to 1.

    Axis 1 is a*, axis 2 is b*; bins split [-AB_HIST_RANGE, AB_HIST_RANGE] evenly and values
    outside it are clipped into the edge bins.
    """
    n = AB_HIST_BINS
    width = 2 * AB_HIST_RANGE / n
    index = ((lab[:, 1:].double() + AB_HIST_RANGE) / width).floor().clamp_(0, n - 1).long()  # (B, 2, H, W)
    flat = (index[:, 0] * n + index[:, 1]).flatten(1)  # (B, N)
    offsets = torch.arange(flat.shape[0], device=flat.device)[:, None] * (n * n)
    counts = torch.bincount((flat + offsets).flatten(), minlength=flat.shape[0] * n * n).reshape(-1, n, n)
    return (counts.double() / flat.shape[1]).cpu()


def histogram_intersection(first: torch.Tensor, second: torch.Tensor) -> float:
    """Sum of the elementwise minimum of two histograms, each normalised to sum 1 first (nan if either is empty)."""
    first, second = first.double(), second.double()
    if first.sum() <= 0 or second.sum() <= 0:
        return math.nan
    return torch.minimum(first / first.sum(), second / second.sum()).sum().item()


class PooledColorStats:
    """Counts of the set metrics, accumulated over Lab batches with :meth:`add`; :meth:`result` scores the set.

    hue_recall_<class>: of the truth pixels with chroma >= 15 in that hue class, the share whose
    prediction has chroma >= 8 and the same class (nan when the class has none);
    hue_recall: the mean of those over the classes with more than HUE_MIN_PIXELS such truth pixels
    (nan when none has); hue_precision: of the predicted pixels with chroma >= 8, the share whose
    truth has chroma >= 15 and the same class (nan when there are none);
    ab_hist: intersection of the pooled a*b* histograms of predictions and truth, each image's
    histogram normalised by its pixel count before pooling.
    hue_confusion: pixel counts, a list of rows (the truth's class) of columns (the prediction's),
    both in the order of CONFUSION_LABELS (see :func:`hue_counts`): where each truth colour went.
    """

    def __init__(self) -> None:
        k, n = len(HUE_CLASSES), AB_HIST_BINS
        self.confusion = torch.zeros(k + 1, k + 1, dtype=torch.int64)  # truth, hit and pred derive from it
        self.hist_pred = torch.zeros(n, n, dtype=torch.float64)
        self.hist_true = torch.zeros(n, n, dtype=torch.float64)
        self.images = 0

    def add(self, lab_pred: torch.Tensor, lab_true: torch.Tensor) -> PooledColorStats:
        """Add one Lab batch (B, 3, H, W) of predictions and their truth."""
        self.confusion += hue_counts(lab_pred, lab_true)["confusion"]
        self.hist_pred += ab_histograms(lab_pred).sum(0)
        self.hist_true += ab_histograms(lab_true).sum(0)
        self.images += lab_pred.shape[0]
        return self

    def add_rgb(self, prediction: torch.Tensor, reference: torch.Tensor) -> PooledColorStats:
        """Add one sRGB batch (B, 3, H, W) in [0, 1], or one (3, H, W) image."""
        prediction = prediction[None] if prediction.ndim == 3 else prediction
        reference = reference[None] if reference.ndim == 3 else reference
        _check(prediction, reference)
        return self.add(rgb_to_lab(prediction.float()), rgb_to_lab(reference.float()))

    def merge(self, other: PooledColorStats) -> PooledColorStats:
        for name in ("confusion", "hist_pred", "hist_true"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.images += other.images
        return self

    def hue_recall(self) -> dict[str, float]:
        counts = _class_counts(self.confusion)
        truth, hit = counts["truth"].tolist(), counts["hit"].tolist()
        per_class = {f"hue_recall_{name}": hit[i] / truth[i] if truth[i] else math.nan for i, name in enumerate(HUE_CLASSES)}
        counted = [per_class[f"hue_recall_{name}"] for i, name in enumerate(HUE_CLASSES) if truth[i] > HUE_MIN_PIXELS]
        pixels = {f"hue_truth_pixels_{name}": truth[i] for i, name in enumerate(HUE_CLASSES)}
        return {"hue_recall": sum(counted) / len(counted) if counted else math.nan, **per_class, **pixels}

    def hue_precision(self) -> dict[str, float]:
        counts = _class_counts(self.confusion)
        predicted = int(counts["pred"].sum())
        return {"hue_precision": int(counts["hit"].sum()) / predicted if predicted else math.nan}

    def ab_hist(self) -> dict[str, float]:
        return {"ab_hist": histogram_intersection(self.hist_pred, self.hist_true)}

    def hue_confusion(self) -> dict[str, list[list[int]]]:
        return {"hue_confusion": self.confusion.tolist()}

    def result(self) -> dict[str, float | list[list[int]]]:
        return {**self.hue_recall(), **self.hue_precision(), **self.ab_hist(), **self.hue_confusion()}


def _pooled(predictions, references) -> PooledColorStats:
    """Counts of a (B, 3, H, W) sRGB batch, or of sequences of (3, H, W) / (1, 3, H, W) images of any sizes."""
    if isinstance(predictions, torch.Tensor) and predictions.ndim == 4:
        predictions, references = list(predictions.split(1)), list(references.split(1))
    if len(predictions) != len(references) or not len(predictions):
        raise ValueError(f"need as many predictions as references, and at least one (got {len(predictions)} and {len(references)})")
    stats = PooledColorStats()
    for prediction, reference in zip(predictions, references):
        stats.add_rgb(prediction, reference)
    return stats


def pooled_color_metrics(predictions: torch.Tensor | Sequence[torch.Tensor],
                         references: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, float]:
    """Every set metric (see :class:`PooledColorStats`) of a whole eval set of sRGB images in [0, 1]:
    a (B, 3, H, W) batch, or lists of (3, H, W) images of any sizes."""
    return _pooled(predictions, references).result()


def hue_recall(predictions, references) -> dict[str, float]:
    """``hue_recall`` (mean over classes with > HUE_MIN_PIXELS truth pixels), ``hue_recall_<class>`` and
    ``hue_truth_pixels_<class>``, pooled over the set."""
    return _pooled(predictions, references).hue_recall()


def hue_precision(predictions, references) -> float:
    """Share of the set's predicted pixels with chroma >= 8 whose truth has chroma >= 15 and the same hue class."""
    return _pooled(predictions, references).hue_precision()["hue_precision"]


def ab_hist(predictions, references) -> float:
    """Intersection of the set's pooled a*b* histograms of predictions and truth, in [0, 1]."""
    return _pooled(predictions, references).ab_hist()["ab_hist"]

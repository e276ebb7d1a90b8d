"""Colorization metrics on batches of RGB images, in torch.

Every function takes ``prediction`` and ``reference`` as (B, 3, H, W) sRGB in [0, 1] and
returns one value per image, shape (B,), so callers can average, weight or batch them.
The `evaluate` modules beside this file wrap them; `colorgan evaluate` uses them too.
"""

from __future__ import annotations

import math

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


def all_metrics(prediction: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every per-image metric of this module at once, converting to Lab only once."""
    _check(prediction, reference)
    prediction, reference = prediction.float(), reference.float()
    lab_pred, lab_true = rgb_to_lab(prediction), rgb_to_lab(reference)
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

"""Re-balancing of rare colours, after Zhang, Isola & Efros (2016), "Colorful Image Colorization".

A pixel loss averaged over natural photos is dominated by sky, sea, foliage and the
near-gray: the cheapest answer is a desaturated blue-ish mean (the paper's blue bias).
Weighting each pixel by how rare its true colour is makes the saturated, rare colours
count: w(ab) is proportional to 1 / ((1 - lam) * p(ab) + lam / Q), normalised so that the
expected weight over the training set is 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .color import AB_SCALE

# ab-plane histogram: bins of BIN_SIZE Lab units over [-AB_SCALE, AB_SCALE].
BIN_SIZE = 10.0
NUM_BINS = int(2 * AB_SCALE / BIN_SIZE)
# Mixing with the uniform distribution keeps the weights of never-seen colours finite;
# Zhang et al. found 0.5 a good balance between colourfulness and accuracy.
DEFAULT_LAMBDA = 0.5


def _bin_index(ab_norm: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) ab in [-1, 1] -> (B, H, W) flat bin index."""
    idx = ((ab_norm.float() + 1.0) * (NUM_BINS / 2)).long().clamp_(0, NUM_BINS - 1)
    return idx[:, 0] * NUM_BINS + idx[:, 1]


def ab_histogram(ab_norm: torch.Tensor) -> torch.Tensor:
    """Counts of (B, 2, H, W) ab values in [-1, 1] over the NUM_BINS x NUM_BINS grid."""
    return torch.bincount(_bin_index(ab_norm).flatten(), minlength=NUM_BINS * NUM_BINS).float()


class ChromaRebalancer(nn.Module):
    """Per-pixel loss weights from an ab histogram of the training set.

    Args:
        counts: (NUM_BINS * NUM_BINS,) ab counts, e.g. summed :func:`ab_histogram` of
            training batches.
        lam: weight of the uniform distribution in the mix (0: pure inverse frequency,
            1: no re-balancing).
    """

    def __init__(self, counts: torch.Tensor, lam: float = DEFAULT_LAMBDA) -> None:
        super().__init__()
        if not 0.0 < lam <= 1.0:
            raise ValueError(f"lam must be in (0, 1], got {lam}")
        grid = counts.float().reshape(1, 1, NUM_BINS, NUM_BINS)
        # A 3x3 Gaussian-like blur smooths the empirical distribution across neighbouring bins.
        kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
        smooth = F.conv2d(grid, kernel[None, None], padding=1).flatten()
        prob = smooth / smooth.sum().clamp_min(1e-12)
        seen = prob > 0
        weights = torch.zeros_like(prob)
        weights[seen] = 1.0 / ((1.0 - lam) * prob[seen] + lam / seen.sum())
        weights = weights / (prob * weights).sum()  # E_p[w] = 1
        self.register_buffer("weights", weights)

    def forward(self, ab_norm: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) true ab in [-1, 1] -> (B, 1, H, W) weights."""
        return self.weights[_bin_index(ab_norm)].unsqueeze(1)

"""RGB <-> CIE Lab in torch, and the scaling of L and ab to the ranges the networks see.

Lab separates what a black-and-white photo already has (lightness L) from what the model
must guess (the chroma a*, b*). The conversion itself is kornia's (sRGB, D65 white).
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

# L* lives in [0, 100]; the networks see it centred on 0 in [-1, 1].
L_CENTER = 50.0
L_SCALE = 50.0
# a* and b* of sRGB colours stay within about [-110, 110]: dividing by this maps the
# whole sRGB gamut into the tanh range [-1, 1] of the generator output.
AB_SCALE = 110.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (*, 3, H, W) -> Lab, L in [0, 100], a and b in about [-110, 110]."""
    return _kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab (*, 3, H, W) -> sRGB in [0, 1] (clipped to the gamut unless ``clip=False``)."""
    return _kornia_lab_to_rgb(lab, clip=clip)


def normalize_l(l_channel: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> [-1, 1]."""
    return (l_channel - L_CENTER) / L_SCALE


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> L in [0, 100]."""
    return l_norm * L_SCALE + L_CENTER


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """a, b in Lab units -> [-1, 1]."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> a, b in Lab units."""
    return ab_norm * AB_SCALE


def gray_from_l(l_channel: torch.Tensor) -> torch.Tensor:
    """L (*, 1, H, W) -> the sRGB gray value in [0, 1] of a neutral colour with that lightness.

    This is how a Lab-based pipeline hands a grayscale picture to a network that, like the
    paper's, was trained on gamma-encoded gray images.
    """
    neutral = torch.cat([l_channel, torch.zeros_like(l_channel), torch.zeros_like(l_channel)], dim=-3)
    return lab_to_rgb(neutral)[..., :1, :, :]

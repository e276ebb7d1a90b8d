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


# ------------------------------------------------------------------------------------------
# The full-resolution path of the pipeline. kornia's conversions above are the reference
# (tests compare against them); these do the same arithmetic for the two things the
# pipeline needs at full size, lightness in and sRGB out, with fewer passes over memory.
# ------------------------------------------------------------------------------------------

# sRGB transfer function (IEC 61966-2-1).
_SRGB_KNEE = 0.04045
_SRGB_LINEAR_SLOPE = 12.92
_SRGB_OFFSET = 0.055
_SRGB_GAMMA = 2.4
# CIE L* of relative luminance Y (D65 white): L = 116 f(Y) - 16.
_LAB_EPSILON = (6.0 / 29.0) ** 3
_LAB_KAPPA_SLOPE = (29.0 / 6.0) ** 2 / 3.0
# Rec. 709 / sRGB luminance weights and the XYZ (D65) -> linear sRGB matrix.
_Y_WEIGHTS = (0.212671, 0.715160, 0.072169)
_D65_WHITE = (0.950456, 1.0, 1.088754)
_XYZ_TO_RGB = (
    (3.240479, -1.53715, -0.498535),
    (-0.969256, 1.875991, 0.041556),
    (0.055648, -0.204043, 1.057311),
)


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > _SRGB_KNEE, ((c.clamp_min(0) + _SRGB_OFFSET) / (1 + _SRGB_OFFSET)).pow(_SRGB_GAMMA), c / _SRGB_LINEAR_SLOPE)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _LAB_EPSILON, t.clamp_min(_LAB_EPSILON).pow(1.0 / 3.0), _LAB_KAPPA_SLOPE * t + 4.0 / 29.0)


def _lab_f_inverse(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 6.0 / 29.0, t * t * t, (t - 4.0 / 29.0) / _LAB_KAPPA_SLOPE)


def _srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    return torch.where(linear > _SRGB_KNEE / _SRGB_LINEAR_SLOPE,
                       (1 + _SRGB_OFFSET) * linear.clamp_min(0).pow(1.0 / _SRGB_GAMMA) - _SRGB_OFFSET, _SRGB_LINEAR_SLOPE * linear)


# Lookup tables: 8-bit sRGB -> linear, 8-bit gray -> L*, and linear (in 1/ENCODE_STEPS
# steps) -> 8-bit sRGB. A gather is far cheaper than a pow per pixel; ENCODE_STEPS is fine
# enough that the table never differs from the exact encoding by more than one level.
ENCODE_STEPS = 1 << 14
_LEVELS = torch.arange(256, dtype=torch.float64) / 255.0
_SRGB8_TO_LINEAR = _srgb_to_linear(_LEVELS).float()
_GRAY8_TO_L = (116.0 * _lab_f(_srgb_to_linear(_LEVELS)) - 16.0).float()
_LINEAR_TO_SRGB8 = (_srgb_encode(torch.arange(ENCODE_STEPS + 1, dtype=torch.float64) / ENCODE_STEPS) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)


def lightness(image: torch.Tensor) -> torch.Tensor:
    """sRGB (3, H, W) or gray (1, H, W), uint8 or float in [0, 1] -> L* (1, H, W) in [0, 100].

    A gray plane is one sRGB value per pixel (R = G = B), so it costs one channel, not three;
    8-bit input goes through lookup tables.
    """
    if image.dtype == torch.uint8 and image.shape[-3] == 1:
        return _GRAY8_TO_L[image.long()]
    linear = _SRGB8_TO_LINEAR[image.long()] if image.dtype == torch.uint8 else _srgb_to_linear(image.float())
    if image.shape[-3] == 3:
        r, g, b = linear.unbind(-3)
        luminance = (_Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b).unsqueeze(-3)
    else:
        luminance = linear  # the weights sum to 1
    return 116.0 * _lab_f(luminance) - 16.0


def lab_to_srgb8(l_channel: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L* (1, H, W) and a*b* (2, H, W) -> sRGB (3, H, W) uint8, clipped to the gamut.

    The arithmetic of :func:`lab_to_rgb` (kornia, whose clamp of f(Z) at 0 it keeps),
    written to touch full-resolution memory as few times as possible.
    """
    fy = (l_channel[0] + 16.0) / 116.0
    xyz = (
        _D65_WHITE[0] * _lab_f_inverse(fy + ab[0] / 500.0),
        _lab_f_inverse(fy),
        _D65_WHITE[2] * _lab_f_inverse((fy - ab[1] / 200.0).clamp_(min=0.0)),
    )
    channels = []
    for row in _XYZ_TO_RGB:
        linear = (row[0] * xyz[0] + row[1] * xyz[1] + row[2] * xyz[2]).clamp_(0.0, 1.0)
        channels.append(_LINEAR_TO_SRGB8[linear.mul_(ENCODE_STEPS).add_(0.5).long()])
    return torch.stack(channels)

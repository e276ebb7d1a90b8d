import torch

from colorgan_hf.color import (
    AB_SCALE,
    denormalize_ab,
    denormalize_l,
    gray_from_l,
    lab_to_rgb,
    normalize_ab,
    normalize_l,
    rgb_to_lab,
)


def test_lab_round_trip_on_random_images():
    rgb = torch.rand(4, 3, 64, 48)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1e-3


def test_lab_ranges_and_scaling_constants():
    rgb = torch.rand(2, 3, 32, 32)
    lab = rgb_to_lab(rgb)
    l_norm, ab_norm = normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])
    assert l_norm.min() >= -1.0 and l_norm.max() <= 1.0
    assert ab_norm.abs().max() <= 1.0, "AB_SCALE must cover the sRGB gamut"
    torch.testing.assert_close(denormalize_l(l_norm), lab[:, :1])
    torch.testing.assert_close(denormalize_ab(ab_norm), lab[:, 1:])
    # The most saturated sRGB colours come close to AB_SCALE: it is not wastefully large.
    primaries = torch.eye(3).reshape(3, 3, 1, 1)
    assert rgb_to_lab(primaries)[:, 1:].abs().max() > 0.8 * AB_SCALE


def test_gray_from_l_is_neutral_and_monotonic():
    l_channel = torch.linspace(0, 100, 11).reshape(1, 1, 1, 11)
    gray = gray_from_l(l_channel)
    assert gray.shape == (1, 1, 1, 11)
    assert torch.all(gray[..., 1:] > gray[..., :-1])
    rgb = gray.expand(1, 3, 1, 11)
    torch.testing.assert_close(rgb_to_lab(rgb)[:, :1], l_channel, atol=1e-3, rtol=0)


def test_fast_full_resolution_path_matches_kornia():
    from colorgan_hf.color import lab_to_srgb8, lightness

    rgb = torch.rand(3, 40, 50)
    rgb8 = (rgb * 255).round().to(torch.uint8)
    for image in (rgb, rgb8, rgb8[:1], rgb[:1]):
        reference = rgb_to_lab((image.float() / 255 if image.dtype == torch.uint8 else image).expand(3, -1, -1))[:1]
        assert (lightness(image) - reference).abs().max() < 1e-3
    l_channel = rgb_to_lab(rgb)[:1]
    ab = (torch.rand(2, 40, 50) - 0.5) * 180
    reference = (lab_to_rgb(torch.cat([l_channel, ab])) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    assert (lab_to_srgb8(l_channel, ab).int() - reference.int()).abs().max() <= 1

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan_hf.color import lab_to_rgb, rgb_to_lab
from colorgan_hf.metrics import functional as F
from colorgan_hf.metrics.modules import METRIC_NAMES, load_metric

# Sharma, Wu & Dalal (2005), table 1: (Lab 1, Lab 2, CIEDE2000).
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


def batch(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def with_chroma_removed(x: torch.Tensor) -> torch.Tensor:
    lab = rgb_to_lab(x)
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))


@pytest.mark.parametrize("lab1, lab2, expected", SHARMA_PAIRS)
def test_ciede2000_matches_sharma_table(lab1, lab2, expected):
    value = F.ciede2000_map(torch.tensor(lab1).reshape(1, 3, 1, 1), torch.tensor(lab2).reshape(1, 3, 1, 1))
    assert value.item() == pytest.approx(expected, abs=1e-3)


def test_ciede2000_matches_scikit_image_on_random_colours():
    skimage_color = pytest.importorskip("skimage.color")
    rgb1, rgb2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    ours = F.ciede2000_map(rgb_to_lab(rgb1), rgb_to_lab(rgb2))[0].numpy()
    lab1 = skimage_color.rgb2lab(rgb1[0].permute(1, 2, 0).numpy())
    lab2 = skimage_color.rgb2lab(rgb2[0].permute(1, 2, 0).numpy())
    theirs = skimage_color.deltaE_ciede2000(lab1, lab2)
    assert np.abs(ours - theirs).max() < 0.05


def test_identical_images(photo):
    x = batch(photo)
    assert F.psnr(x, x).item() == F.PSNR_CAP_DB
    assert F.ssim(x, x).item() == pytest.approx(1.0, abs=1e-4)
    assert F.ciede2000(x, x).item() == pytest.approx(0.0, abs=1e-3)
    assert F.ab_auc(x, x).item() == pytest.approx(1.0, abs=1e-2)
    assert F.mse(x, x).item() == 0.0


def test_psnr_and_mse_against_numpy(photo):
    x = batch(photo)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    err = ((x - y) ** 2).mean().item()
    assert F.mse(y, x).item() == pytest.approx(err, rel=1e-5)
    assert F.psnr(y, x).item() == pytest.approx(10 * np.log10(1 / err), rel=1e-4)


def test_colorfulness_zero_for_gray_and_matches_formula(photo):
    assert F.colorfulness(batch(photo.convert("L"))).item() == pytest.approx(0.0, abs=1e-4)
    rgb = np.asarray(photo, dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert F.colorfulness(batch(photo)).item() == pytest.approx(expected, rel=1e-4)


def test_bluish_shift_gives_negative_b_shift(photo):
    x = batch(photo)
    bluish = x.clone()
    bluish[:, 2] = (bluish[:, 2] + 0.15).clamp(0, 1)
    a_shift, b_shift = F.ab_shift(bluish, x)[0].tolist()
    assert b_shift < -3.0
    assert abs(a_shift) < abs(b_shift)


def test_ab_auc_orders_errors(photo):
    x = batch(photo)
    gray = with_chroma_removed(x)
    half = with_chroma_removed(x) * 0.5 + x * 0.5
    assert F.ab_auc(half, x) > F.ab_auc(gray, x)
    error = (rgb_to_lab(gray)[:, 1:] - rgb_to_lab(x)[:, 1:]).norm(dim=1).flatten()
    brute = np.mean([(error <= t).float().mean().item() for t in range(0, 151)])
    # The trapezoid and the plain mean over thresholds differ by at most half a step.
    assert F.ab_auc(gray, x).item() == pytest.approx(brute, abs=0.01)


def test_evaluate_modules_load_offline_and_agree(photo):
    gray = photo.convert("L").convert("RGB")
    combined = load_metric("colorization").compute(predictions=[gray, photo], references=[photo, photo])
    for name in METRIC_NAMES[:-1]:
        result = load_metric(name).compute(predictions=[gray, photo], references=[photo, photo])
        for key, value in result.items():
            assert combined[key] == pytest.approx(value, rel=1e-4), (name, key)
    assert combined["colorfulness_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert combined["psnr"] == pytest.approx((F.psnr(batch(gray), batch(photo)).item() + F.PSNR_CAP_DB) / 2, rel=1e-4)


def test_paper_mse_batches_and_weighted_mean(photo):
    images = [photo.rotate(angle) for angle in (0, 5, 10)]
    result = load_metric("paper_mse").compute(predictions=images, references=[photo] * 3, batch_size=2)
    per_image = [F.mse(batch(i), batch(photo)).item() for i in images]
    assert result["mse_per_batch"] == pytest.approx([(per_image[0] + per_image[1]) / 2, per_image[2]], rel=1e-5)
    assert result["mse_weighted_mean"] == pytest.approx(sum(per_image) / 3, rel=1e-5)

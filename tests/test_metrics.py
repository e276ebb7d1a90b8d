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
            assert combined[key] == pytest.approx(value, rel=1e-4, nan_ok=True), (name, key)
    assert combined["colorfulness_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert combined["psnr"] == pytest.approx((F.psnr(batch(gray), batch(photo)).item() + F.PSNR_CAP_DB) / 2, rel=1e-4)


def test_paper_mse_batches_and_weighted_mean(photo):
    images = [photo.rotate(angle) for angle in (0, 5, 10)]
    result = load_metric("paper_mse").compute(predictions=images, references=[photo] * 3, batch_size=2)
    per_image = [F.mse(batch(i), batch(photo)).item() for i in images]
    assert result["mse_per_batch"] == pytest.approx([(per_image[0] + per_image[1]) / 2, per_image[2]], rel=1e-5)
    assert result["mse_weighted_mean"] == pytest.approx(sum(per_image) / 3, rel=1e-5)


# ---- set metrics: hue recall / precision and the ab histogram intersection, pooled over the set ----


def lab_image(pixels, width: int | None = None) -> torch.Tensor:
    """A Lab (1, 3, 1, N) image from (L, a, b) triples, or (1, 3, H, W) when ``width`` divides N."""
    lab = torch.tensor(pixels, dtype=torch.float32).T[None, :, None, :]
    return lab.reshape(1, 3, -1, width) if width else lab


def at_hue(degrees: float, chroma: float = 30.0, lightness: float = 50.0) -> tuple[float, float, float]:
    angle = np.deg2rad(degrees)
    return (lightness, chroma * np.cos(angle), chroma * np.sin(angle))


RED, GREEN, BLUE, GRAY = at_hue(20), at_hue(140), at_hue(250), (50.0, 0.0, 0.0)


def pooled(*pairs) -> dict:
    stats = F.PooledColorStats()
    for prediction, truth in pairs:
        stats.add(prediction, truth)
    return stats.result()


@pytest.mark.parametrize("degrees, expected", [
    (0, "red"), (44.5, "red"), (45.5, "yellow"), (109.5, "yellow"), (110.5, "green"), (169.5, "green"), (170.5, "blue"),
    (250, "blue"), (309.5, "blue"), (310.5, "purple"), (334.5, "purple"),
    # h >= 335 wraps to red, as do the angles atan2 gives as negative down to -25.
    (335.5, "red"), (350, "red"), (-20, "red"), (-24.5, "red"), (-25.5, "purple"), (-40, "purple"), (-60, "blue"),
])
def test_hue_classes_and_the_wrap_to_red(degrees, expected):
    assert F.HUE_CLASSES[F.hue_class(lab_image([at_hue(degrees)])).item()] == expected


def test_identical_prediction_gives_recall_precision_and_ab_hist_of_one(photo_paths):
    photos = [batch(Image.open(path)) for path in photo_paths]
    result = F.pooled_color_metrics([p[0] for p in photos], [p[0] for p in photos])
    assert result["hue_recall"] == 1.0
    assert all(result[f"hue_recall_{name}"] == 1.0 for name in F.HUE_CLASSES if result[f"hue_truth_pixels_{name}"])
    assert result["ab_hist"] == pytest.approx(1.0, abs=1e-12)
    # Precision counts predicted pixels from chroma 8, truth from 15: with no chroma in [8, 15) it is 1 exactly.
    generator = torch.Generator().manual_seed(0)
    ab = (torch.rand(1, 2, 64, 64, generator=generator) * 2 - 1) * 60
    ab[(ab.norm(dim=1, keepdim=True) < 15).expand_as(ab)] *= 0.1  # chroma < 6 there
    lab = torch.cat([torch.full((1, 1, 64, 64), 50.0), ab], dim=1)
    same = pooled((lab, lab))
    assert same["hue_precision"] == 1.0 and same["hue_recall"] == 1.0 and same["ab_hist"] == pytest.approx(1.0)
    # On a photo, the identical prediction's precision is the share of its chroma >= 8 pixels that reach 15.
    x = batch(Image.open(photo_paths[0]))
    chroma = rgb_to_lab(x)[:, 1:].norm(dim=1)
    assert F.hue_precision(x, x) == pytest.approx(((chroma >= 15).sum() / (chroma >= 8).sum()).item(), rel=1e-6)


def test_gray_prediction_gives_zero_recall_and_a_low_ab_hist(photo_paths):
    photos = [batch(Image.open(path)) for path in photo_paths]
    result = F.pooled_color_metrics([with_chroma_removed(p)[0] for p in photos], [p[0] for p in photos])
    assert result["hue_recall"] == 0.0
    assert all(result[f"hue_recall_{name}"] in (0.0,) or np.isnan(result[f"hue_recall_{name}"]) for name in F.HUE_CLASSES)
    assert np.isnan(result["hue_precision"]), "nothing predicted in colour: precision is undefined"
    assert result["ab_hist"] < 0.3
    assert F.ab_hist(torch.cat([with_chroma_removed(p) for p in photos[:3]]), torch.cat(photos[:3])) < 0.3


def test_red_truth_predicted_green_gives_the_counted_numbers():
    truth = lab_image([RED] * 1600, width=40)
    result = pooled((lab_image([GREEN] * 1600, width=40), truth))
    assert result["hue_truth_pixels_red"] == 1600 and result["hue_truth_pixels_green"] == 0
    assert result["hue_recall_red"] == 0.0 and np.isnan(result["hue_recall_green"])
    assert result["hue_recall"] == 0.0 and result["hue_precision"] == 0.0 and result["ab_hist"] == 0.0

    # Half right: 800 red of 1600 red truth; 1600 coloured predictions of which 800 match.
    half = lab_image([RED] * 800 + [GREEN] * 800, width=40)
    result = pooled((half, truth))
    assert result["hue_recall_red"] == 0.5 and result["hue_recall"] == 0.5
    assert result["hue_precision"] == 0.5 and result["ab_hist"] == pytest.approx(0.5)

    # Thresholds: a prediction counts from chroma 8 (a faint red of chroma 8.5 is a hit; 7.6 is not,
    # and is not in the precision's denominator either); truth counts from chroma 15.
    faint = lab_image([(50.0, 8.0, 3.0)] * 300 + [(50.0, 7.0, 3.0)] * 100 + [GREEN] * 200, width=20)
    truth = lab_image([RED] * 500 + [(50.0, 14.0, 3.0)] * 100, width=20)  # the last 100: chroma 14.3, not counted
    result = pooled((faint, truth))
    assert result["hue_truth_pixels_red"] == 500
    assert result["hue_recall_red"] == 300 / 500
    assert result["hue_precision"] == 300 / (300 + 200)


def test_hue_confusion_counts_where_each_truth_colour_went_and_agrees_with_recall_and_precision(photo_paths):
    labels = F.CONFUSION_LABELS
    red, yellow, green, neutral = (labels.index(name) for name in ("red", "yellow", "green", "neutral"))
    # 300 red truth painted yellow, 100 painted red, 50 left gray; 200 gray truth painted green.
    prediction = lab_image([at_hue(80)] * 300 + [RED] * 100 + [GRAY] * 50 + [GREEN] * 200, width=50)
    truth = lab_image([RED] * 450 + [GRAY] * 200, width=50)
    counts = np.array(pooled((prediction, truth))["hue_confusion"])
    assert counts.shape == (len(labels), len(labels)) and counts.sum() == 650
    assert counts[red, yellow] == 300 and counts[red, red] == 100 and counts[red, neutral] == 50
    assert counts[neutral, green] == 200
    assert np.count_nonzero(counts) == 4

    # On photos with some colours wrong: the diagonal is the hits, rows the truth counts, columns the painted counts.
    photos = [batch(Image.open(path)) for path in photo_paths]
    stats = F.PooledColorStats()
    for i, photo in enumerate(photos):
        stats.add(rgb_to_lab(photo.roll(1, dims=1) if i % 2 == 0 else photo), rgb_to_lab(photo))
    result, counts = stats.result(), np.array(stats.result()["hue_confusion"])
    k = len(F.HUE_CLASSES)
    for i, name in enumerate(F.HUE_CLASSES):
        assert counts[i].sum() == result[f"hue_truth_pixels_{name}"]
        if counts[i].sum():
            assert counts[i, i] / counts[i].sum() == pytest.approx(result[f"hue_recall_{name}"], rel=1e-12)
    assert np.trace(counts[:k, :k]) / counts[:, :k].sum() == pytest.approx(result["hue_precision"], rel=1e-12)
    assert counts.sum() == sum(p.shape[-2] * p.shape[-1] for p in photos)
    merged = F.PooledColorStats().merge(stats)
    assert merged.result()["hue_confusion"] == result["hue_confusion"]


def test_counts_are_pooled_over_the_set_not_averaged_over_images():
    right = (lab_image([RED] * 100, width=10), lab_image([RED] * 100, width=10))
    wrong = (lab_image([GRAY] * 1900, width=38), lab_image([RED] * 1900, width=38))
    result = pooled(right, wrong)
    assert result["hue_recall_red"] == 100 / 2000, "not the mean of the per-image 1 and 0"
    assert result["hue_precision"] == 1.0


def test_hue_recall_mean_takes_classes_with_more_than_1000_truth_pixels():
    red_right = (lab_image([RED] * 1001), lab_image([RED] * 1001))
    blue_missed = (lab_image([GRAY] * 1000), lab_image([BLUE] * 1000))
    result = pooled(red_right, blue_missed)
    assert result["hue_recall_red"] == 1.0 and result["hue_recall_blue"] == 0.0
    assert result["hue_recall"] == 1.0, "blue has only 1000 truth pixels: left out of the mean"
    result = pooled(red_right, blue_missed, (lab_image([GRAY]), lab_image([BLUE])))
    assert result["hue_truth_pixels_blue"] == 1001 and result["hue_recall"] == 0.5
    assert np.isnan(pooled((lab_image([GRAY] * 10), lab_image([RED] * 10)))["hue_recall"]), "no class is large enough"


def test_ab_hist_normalises_each_image_before_pooling_and_clips_into_edge_bins():
    small = (lab_image([RED] * 100, width=10), lab_image([RED] * 100, width=10))
    large = (lab_image([GREEN] * 10000, width=100), lab_image([BLUE] * 10000, width=100))
    # Per image: the small image matches fully and the large not at all; each weighs the same.
    assert pooled(small, large)["ab_hist"] == pytest.approx(0.5)
    outside = lab_image([(50.0, 180.0, -150.0)] * 4, width=2)
    edge = lab_image([(50.0, 105.0, -105.0)] * 4, width=2)
    assert pooled((outside, edge))["ab_hist"] == pytest.approx(1.0)
    histogram = F.ab_histograms(outside)[0]
    assert histogram[F.AB_HIST_BINS - 1, 0] == 1.0 and histogram.sum() == pytest.approx(1.0)
    # a* along axis 1, b* along axis 2; a = b = 0 falls in the bin starting at 0.
    assert F.ab_histograms(lab_image([GRAY]))[0, F.AB_HIST_BINS // 2, F.AB_HIST_BINS // 2] == 1.0


def test_set_metric_modules_pool_over_batches_like_the_functional_form(photo_paths):
    photos = [Image.open(path).convert("RGB") for path in photo_paths]
    # Some colours right, some wrong: every other photo with its RGB channels rotated (R <- B, G <- R, B <- G).
    predictions = [Image.fromarray(np.roll(np.asarray(p), 1, axis=2)) if i % 2 == 0 else p for i, p in enumerate(photos)]
    expected = F.pooled_color_metrics([batch(p)[0] for p in predictions], [batch(t)[0] for t in photos])
    assert 0 < expected["hue_recall"] < 1 and 0 < expected["hue_precision"] < 1 and 0 < expected["ab_hist"] < 1
    for name in ("hue_recall", "hue_precision", "ab_hist", "colorization"):
        metric = load_metric(name)
        metric.add_batch(predictions=predictions[:2], references=photos[:2])
        metric.add(predictions=predictions[2], references=photos[2])
        metric.add_batch(predictions=predictions[3:], references=photos[3:])
        result = metric.compute()
        keys = [k for k in expected if k.startswith(name)] if name != "colorization" else list(expected)
        assert keys
        for key in keys:
            if key == "hue_confusion":  # pixel counts, exact
                assert result[key] == expected[key]
                continue
            assert result[key] == pytest.approx(expected[key], rel=1e-9, nan_ok=True), (name, key)

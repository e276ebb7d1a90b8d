"""Faded photos, measured: what a faded print costs the colours, and what `auto_contrast` wins back.

    python bench/faded.py [--data ../shared/data/photos/eval/bsds500_test] [--model default] [--limit N] \
        [--json bench/faded.json]

An old print loses its blacks and whites: its tones are squeezed into the middle (a light
fade), or towards the dark (a dark, underexposed scan). Each colour photo of ``--data`` is made
gray exactly as `colorgan evaluate` does, then faded by a linear map of its CIELAB lightness
(FADES), saved as the 8-bit gray a scanner would give, and colorized twice by the shipped
default model at the default working size: as it is, and with ``auto_contrast=True``.

The output keeps the faded photo's lightness, so it cannot be compared with the truth as it is.
What is scored is its colour: the output's a*b* put on the truth's own lightness (back through
8-bit sRGB), against the truth, with the package's metrics (``colorgan_hf.metrics.functional``):
CIEDE2000 averaged over photos, hue recall, hue precision and ab hist pooled over the set, as
in `colorgan evaluate`. The "none" row is the photo as it came (no fade).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorgan_hf import colorize  # noqa: E402
from colorgan_hf.color import gray_from_l, lab_to_rgb, rgb_to_lab  # noqa: E402
from colorgan_hf.evaluation import iter_references  # noqa: E402
from colorgan_hf.files import write_atomic  # noqa: E402
from colorgan_hf.metrics.functional import PooledColorStats, ciede2000_map  # noqa: E402
from colorgan_hf.metrics.modules import to_batch  # noqa: E402
from colorgan_hf.registry import load_model  # noqa: E402

# name -> (offset, gain): the faded lightness is offset + gain * L (L in [0, 100]).
FADES = {"none": (0.0, 1.0), "light fade": (15.0, 0.7), "strong fade": (30.0, 0.45), "dark scan": (5.0, 0.6)}
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "photos" / "eval" / "bsds500_test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help=f"A folder of colour photos (default {DEFAULT_DATA}).")
    parser.add_argument("--model", default="default", help="Shipped name or generator folder (default: default).")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N photos.")
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    return parser.parse_args(argv)


def to_8bit(rgb: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) in [0, 1] -> the same rounded to 8-bit levels, as a file would hold it."""
    return (rgb.clamp(0, 1) * 255).round() / 255


def faded_gray(lab: torch.Tensor, offset: float, gain: float) -> np.ndarray:
    """(1, 3, H, W) Lab -> (H, W) uint8: the photo's gray with its lightness mapped to offset + gain * L."""
    gray = gray_from_l(offset + gain * lab[:, :1])  # (1, 1, H, W) in [0, 1]
    return (to_8bit(gray)[0, 0] * 255).to(torch.uint8).numpy()


def colour_on_truth(output: Image.Image, lab: torch.Tensor) -> torch.Tensor:
    """The output's a*b* on the truth's lightness, as 8-bit sRGB -> Lab (1, 3, H, W)."""
    out_lab = rgb_to_lab(to_batch([output]))
    return rgb_to_lab(to_8bit(lab_to_rgb(torch.cat([lab[:, :1], out_lab[:, 1:]], dim=1))))


def main(args: argparse.Namespace) -> dict:
    """Print, and return, {fade: {"as is" | "auto_contrast": {ciede2000, hue_recall, hue_precision, ab_hist}}}."""
    model = load_model(args.model)
    modes = {"as is": False, "auto_contrast": True}
    errors = {(fade, mode): [] for fade in FADES for mode in modes}
    pooled = {key: PooledColorStats() for key in errors}
    count = 0
    for name, reference in tqdm(iter_references(args.data, args.limit), desc="Faded photos", unit="img"):
        if isinstance(reference, Exception):
            print(f"{name}: skipped ({reference})", file=sys.stderr)
            continue
        truth = rgb_to_lab(to_8bit(reference[None]))
        for fade, (offset, gain) in FADES.items():
            gray = faded_gray(truth, offset, gain)
            for mode, flag in modes.items():
                lab = colour_on_truth(colorize(gray, model, auto_contrast=flag), truth)
                errors[fade, mode].append(ciede2000_map(lab, truth).mean().item())
                pooled[fade, mode].add(lab, truth)
        count += 1
    result: dict = {"data": args.data, "model": args.model, "images": count, "fades": {f: list(v) for f, v in FADES.items()},
                    "rows": {}}
    print(f"{args.data}: {count} photos, model {args.model}; colour scored on the truth's lightness")
    print(f"{'photo':<12} {'':<14} {'CIEDE2000':>9} {'hue recall':>10} {'hue prec':>8} {'ab hist':>7}")
    for fade in FADES:
        for mode in modes:
            stats = pooled[fade, mode]
            row = {"ciede2000": float(np.mean(errors[fade, mode])), "hue_recall": stats.hue_recall()["hue_recall"],
                   "hue_precision": stats.hue_precision()["hue_precision"], "ab_hist": stats.ab_hist()["ab_hist"]}
            result["rows"].setdefault(fade, {})[mode] = row
            print(f"{fade:<12} {mode:<14} {row['ciede2000']:>9.2f} {row['hue_recall']:>10.3f} {row['hue_precision']:>8.3f} "
                  f"{row['ab_hist']:>7.3f}")
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())

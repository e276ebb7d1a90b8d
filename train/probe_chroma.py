#!/usr/bin/env python
"""Can a change of the predicted chroma at decode time buy the colour goals?

    python train/probe_chroma.py --data runs/proxy [--model default] [--limit N]

A probe for the default card ("Where the colours go"), not part of the pipeline. Each photo
of ``--data`` (held-out TRAINING photos: never an eval set, this is a choice) is turned gray
and colorized once, as ``colorgan evaluate`` does (8-bit output); then each variant rescales
the output's CIELAB chroma c (hue and lightness kept) and the result is scored with the
same metrics. The variants shrink the small chroma, where most of the hedged orange/yellow
that lands on neutral truth lies, and some boost the rest. Printed per variant: PSNR /
CIEDE2000 / colourfulness ratio / hue recall (r/y/g/b/p %) / hue precision / ab hist.
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch

from colorgan_hf import colorize
from colorgan_hf.color import lab_to_rgb, rgb_to_lab
from colorgan_hf.evaluation import gray_baseline, iter_references
from colorgan_hf.metrics.functional import PooledColorStats, all_metrics
from colorgan_hf.metrics.modules import to_array, to_batch
from colorgan_hf.registry import load_model
from colorgan_hf.tables import format_hue_classes

# c -> the new chroma, on (1, 1, H, W) chroma maps.
VARIANTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "as is": lambda c: c,
    "c - 3": lambda c: (c - 3).clamp_min(0),
    "c - 6": lambda c: (c - 6).clamp_min(0),
    "gate 6-12": lambda c: c * ((c - 6) / 6).clamp(0, 1),
    "gate 8-14": lambda c: c * ((c - 8) / 6).clamp(0, 1),
    "1.2 (c - 6)": lambda c: 1.2 * (c - 6).clamp_min(0),
    "1.3 x gate 8-14": lambda c: 1.3 * c * ((c - 8) / 6).clamp(0, 1),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="A folder of colour photos (held-out training photos, e.g. runs/proxy).")
    parser.add_argument("--model", default="default", help="Shipped name or generator folder (default: default).")
    parser.add_argument("--limit", type=int, default=None, help="Score only the first N photos.")
    return parser.parse_args(argv)


def rescale_chroma(lab: torch.Tensor, new_chroma: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(1, 3, H, W) CIELAB -> (1, 3, H, W) sRGB in [0, 1], its chroma replaced by ``new_chroma(chroma)``, as 8-bit values."""
    ab = lab[:, 1:]
    chroma = ab.norm(dim=1, keepdim=True)
    scale = torch.where(chroma > 1e-6, new_chroma(chroma) / chroma.clamp_min(1e-6), torch.zeros_like(chroma))
    out = lab_to_rgb(torch.cat([lab[:, :1], ab * scale], dim=1)).clamp(0, 1)
    return (out * 255).round() / 255  # scored as the 8-bit image a user would save


def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Print, and return, each variant's figures by name."""
    generator = load_model(args.model)
    pairs = []
    for _, reference in iter_references(args.data, args.limit):
        if isinstance(reference, Exception):
            raise reference
        gray = to_array(gray_baseline(reference))
        output = to_batch([colorize(gray, generator)])  # (1, 3, H, W) in [0, 1]
        pairs.append((rgb_to_lab(output), reference))  # converted once, for every variant
    print(f"{args.data}: {len(pairs)} photos, model {args.model}")
    results = {}
    for name, new_chroma in VARIANTS.items():
        stats, rows = PooledColorStats(), []
        for lab, reference in pairs:
            rows.append(all_metrics(rescale_chroma(lab, new_chroma), reference[None], stats))
        pooled = stats.result()

        def mean(key: str) -> float:
            return float(torch.cat([row[key] for row in rows]).mean())

        results[name] = {"psnr": mean("psnr"), "ciede2000": mean("ciede2000"),
                         "colorfulness_ratio": mean("colorfulness_pred") / mean("colorfulness_true"),
                         **{k: pooled[k] for k in ("hue_recall", "hue_precision", "ab_hist")}}
        r = results[name]
        print(f"{name:16s} {r['psnr']:.2f} / {r['ciede2000']:.2f} / {r['colorfulness_ratio']:.2f} / {r['hue_recall']:.3f} "
              f"({format_hue_classes(pooled)}) / {r['hue_precision']:.3f} / {r['ab_hist']:.3f}", flush=True)
    return results


if __name__ == "__main__":
    main(parse_args())

#!/usr/bin/env python
"""Which colours does the perceptual loss prefer: a generator's, gray, or the truth changed?

    python train/probe_perceptual.py --pairs pairs/train256 --encoder runs/encoder/mobilenet_v2_rgb.safetensors \
        --model vivid [--count 32] [--blocks 2 5 9] [--blocks 9 12 15]

A probe of the perceptual loss of ``train/train.py --perceptual_weight`` (the card, row AG),
not part of training. It takes ``--count`` photos of the train split of ``--pairs`` (the
BSDS500 and ImageNet ones, a seeded draw), their 256x256 top-left crops, and prints the
pixel loss (L1 on a*b* in [-1, 1]) and the perceptual loss of each block set against the
truth for: the model's colours, gray, the model's chroma x1.3, the truth's chroma x1.2 and
x0.5, and the truth's hue turned by 60 and 120 degrees. A loss that ranks gray below the
model's colours pulls towards gray as the pixel loss does; one that ranks a wrong hue
below gray pushes towards colour, right or not.
"""

from __future__ import annotations

import argparse
import logging
import math
import random

import torch
from datasets import load_from_disk

from colorgan_hf.registry import load_model
from colorgan_hf.data import resize_image
from colorgan_hf.images import load_image
from colorgan_hf.training import PerceptualLoss, boost_chroma, pixel_loss

logger = logging.getLogger("colorgan_hf.probe_perceptual")

SIDE = 256  # the working size the generators infer at
SOURCES = ["bsds500", "imagenet"]  # the photos bsds500_test is most like
BATCH = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, help="A pair set from `colorgan build-dataset`; photos come from its train split.")
    parser.add_argument("--encoder", required=True, help="The RGB MobileNetV2 written by `train/import_encoder.py --rgb`.")
    parser.add_argument("--model", default="vivid", help="An a*b* generator: a shipped name or a folder saved by save_pretrained.")
    parser.add_argument("--count", type=int, default=32, help="How many photos (a multiple of 8 is fastest).")
    parser.add_argument("--blocks", type=int, nargs="+", action="append", default=None,
                        help="A set of MobileNetV2 blocks to compare (repeat the flag for several sets; default: 2 5 9 and 9 12 15).")
    parser.add_argument("--sources", nargs="+", default=SOURCES, help="Which sources of the pair set to draw from.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draw of photos.")
    return parser.parse_args(argv)


def turn_hue(ab: torch.Tensor, degrees: float) -> torch.Tensor:
    """a*b* (B, 2, H, W) turned by ``degrees`` around gray, chroma kept."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return torch.stack([ab[:, 0] * c - ab[:, 1] * s, ab[:, 0] * s + ab[:, 1] * c], dim=1)


def load_crops(pairs: str, count: int, seed: int, sources: list[str]) -> torch.Tensor:
    """``count`` RGB crops (count, 3, SIDE, SIDE) in [0, 1] of the training photos of ``sources``."""
    train = load_from_disk(pairs)["train"]
    rows = [i for i, source in enumerate(train["source"]) if source in sources]
    if not rows:
        raise SystemExit(f"{pairs}: no training photos from {', '.join(sources)} (its sources: {', '.join(sorted(set(train['source'])))})")
    chosen = random.Random(seed).sample(rows, min(count, len(rows)))
    crops = []
    for i in chosen:
        image = resize_image(train[i]["color"].convert("RGB"), SIDE, "short_side").crop((0, 0, SIDE, SIDE))
        crops.append(load_image(image).rgb)
    return torch.stack(crops)


@torch.no_grad()
def main(args: argparse.Namespace) -> list[str]:
    rgb = load_crops(args.pairs, args.count, args.seed, args.sources)
    generator = load_model(args.model).eval()
    net = generator.net
    if not net.AB_TARGET:
        raise SystemExit(f"{args.model}: the probe compares a*b*; this generator predicts RGB")
    gen_input, truth = net.training_pair({"rgb": rgb, "gray": rgb.mean(dim=1, keepdim=True)})
    predicted = torch.cat([net.image(generator(gen_input[i : i + BATCH])) for i in range(0, len(rgb), BATCH)])
    candidates = {
        f"{args.model}'s colours": predicted,
        "gray": torch.zeros_like(truth),
        f"{args.model}'s chroma x1.3": boost_chroma(predicted, 1.3),
        "truth, chroma x1.2": boost_chroma(truth, 1.2),
        "truth, chroma x0.5": truth * 0.5,
        "truth, hue +60 degrees": turn_hue(truth, 60),
        "truth, hue +120 degrees": turn_hue(truth, 120),
    }
    block_sets = [tuple(b) for b in args.blocks] if args.blocks else [(2, 5, 9), (9, 12, 15)]
    losses = [PerceptualLoss(args.encoder, blocks) for blocks in block_sets]
    lines = [f"{len(rgb)} photos of {args.pairs} ({', '.join(args.sources)}), {SIDE}x{SIDE}",
             "| candidate | L1 a*b* | " + " | ".join(f"perceptual, blocks {' '.join(map(str, b))}" for b in block_sets) + " |",
             "| --- " * (2 + len(block_sets)) + "|"]
    truth_rgb = net.image_to_rgb(gen_input, truth)
    for name, ab in candidates.items():
        image = net.image_to_rgb(gen_input, ab)
        row = [pixel_loss(ab, truth, "l1", None).item()]
        for loss in losses:  # batch by batch, as in training
            row.append(sum(loss(image[i : i + BATCH], truth_rgb[i : i + BATCH]).item() * len(image[i : i + BATCH])
                           for i in range(0, len(rgb), BATCH)) / len(rgb))
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(parse_args())

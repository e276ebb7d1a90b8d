#!/usr/bin/env python
"""Does the frozen encoder know the colour of each part of a photo, once nothing limits training?

    python train/probe_cells.py --pairs pairs/train256 --photos runs/proxy \
        --encoder runs/encoder/mobilenet_v2.safetensors [--predicted runs/u-proxy-out]

A probe of what limits the default model (its card, "what limits it"), not part of
training; the cell-level companion of ``probe_neighbours.py``. Every photo is cut into the
cells of the encoder's stride-16 map (block 12, the 96 channels ``unet_semantic`` reads),
each 16x16 pixels of the photo at its stored size. A cell is described by its feature there
(computed on the gray photo) and by the share of its pixels in each hue class of
``hue_recall`` (chroma >= 15), the rest neutral. Each held-out cell of ``--photos`` gets a
guess of its six shares from the training cells (``--pairs``' train split) in two ways that
spend no budget on the encoder:

- **retrieval**: the mean shares of its k nearest training cells (cosine of the features);
- **a trained head**: a small MLP trained on the cached training cells (soft cross-entropy
  on the shares), ``--epochs`` passes over all of them, minutes on a CPU, where the rows
  that trained the encoder's consumers end to end saw two or three epochs of photos.

Printed per class, for each guess and for the training cells' mean shares (and, with
``--predicted``, the model's own shares, chroma >= 8 as ``hue_recall`` counts a painted
pixel): recall, the summed overlap min(guess, truth) over the truth's share, and precision,
the same overlap over the guess's share. The training cells are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from datasets import load_from_disk
from PIL import Image
from tqdm.auto import tqdm

from colorgan_hf.encoders import MobileNetV2Features
from colorgan_hf.metrics.functional import HUE_CLASSES, PRED_CHROMA_MIN, TRUTH_CHROMA_MIN
from probe_neighbours import add_probe_arguments, cached, class_shares, inputs_key, lab_of, opened

logger = logging.getLogger("colorgan_hf.probe_cells")

LABELS = (*HUE_CLASSES, "neutral")
SEARCH_CHUNK = 400_000  # training cells scored at once in the nearest-cell search
HEAD_WIDTH = 512
HEAD_BATCH = 4096
HEAD_LEARNING_RATE = 2e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_probe_arguments(parser)
    parser.add_argument("--neighbours", type=int, nargs="+", default=[8, 32, 128], help="The k nearest training cells averaged.")
    parser.add_argument("--epochs", type=int, default=6, help="Passes of the trained head over all training cells.")
    parser.add_argument("--cache", default=None, help="An .npz file for the training cells (default: beside --encoder).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the head's initialisation and batches.")
    return parser.parse_args(argv)


@torch.no_grad()
def cell_features(encoder: MobileNetV2Features, image: Image.Image) -> torch.Tensor:
    """(1, 96, H/16, W/16) unit-length block-12 features of the gray photo at its own size."""
    gray = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255)[None, None]
    return F.normalize(encoder.features_after(gray, MobileNetV2Features.MID_BLOCK), dim=1)


def describe(encoder: MobileNetV2Features, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """A photo's cells: (cells, 96) features, (cells, 6) truth shares and the grid's (rows, columns)."""
    features = cell_features(encoder, image)
    cells = tuple(features.shape[-2:])
    return features[0].flatten(1).T, class_shares(lab_of(image), TRUTH_CHROMA_MIN, cells), cells


def training_cells(args: argparse.Namespace, encoder: MobileNetV2Features) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and shares of every training photo's cells, from the cache when it was made from
    the same pair set and encoder file. The features are kept in float16 on disk."""
    train = load_from_disk(args.pairs)["train"]

    def compute() -> dict[str, np.ndarray]:
        features, shares = [], []
        for row in tqdm(train, desc="Training photos", unit="photo"):
            f, s, _ = describe(encoder, row["color"])
            features.append(f.half())
            shares.append(s)
        return {"features": torch.cat(features).numpy(), "shares": torch.cat(shares).numpy()}

    saved = cached(Path(args.cache or Path(args.encoder).with_name("cells_block12.npz")),
                   inputs_key(args.pairs, len(train), args.encoder, "cells"), compute)
    return torch.from_numpy(saved["features"]), torch.from_numpy(saved["shares"])


def nearest(queries: torch.Tensor, keys: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, k) indices of the k keys of highest cosine with each query, searched in chunks."""
    best_score = best_index = None
    for start in range(0, keys.shape[0], SEARCH_CHUNK):
        score, index = (queries @ keys[start : start + SEARCH_CHUNK].T).topk(min(k, keys.shape[0] - start), dim=1)
        index = index + start
        if best_score is not None:
            score, order = torch.cat([best_score, score], 1).topk(k, dim=1)
            index = torch.gather(torch.cat([best_index, index], 1), 1, order)
        best_score, best_index = score, index
    return best_index


def train_head(features: torch.Tensor, shares: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """An MLP from a cell's feature to its six shares, trained with soft cross-entropy."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(features.shape[1], HEAD_WIDTH), nn.ReLU(), nn.Linear(HEAD_WIDTH, HEAD_WIDTH), nn.ReLU(),
                         nn.Linear(HEAD_WIDTH, len(LABELS)))
    batches = max(1, features.shape[0] // HEAD_BATCH)
    optimizer = torch.optim.AdamW(head.parameters(), lr=HEAD_LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, HEAD_LEARNING_RATE, total_steps=epochs * batches)
    target = shares / shares.sum(1, keepdim=True)
    for epoch in range(epochs):
        order, total = torch.randperm(features.shape[0], generator=generator), 0.0
        for i in range(batches):
            chosen = order[i * HEAD_BATCH : (i + 1) * HEAD_BATCH]
            loss = -(target[chosen] * F.log_softmax(head(features[chosen]), 1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        logger.info("head epoch %d: soft cross-entropy %.4f", epoch + 1, total / batches)
    return head.eval()


def report(name: str, guess: torch.Tensor, truth: torch.Tensor) -> None:
    overlap = torch.minimum(guess, truth).sum(0)
    recall = " / ".join(f"{v:.2f}" for v in (overlap / truth.sum(0).clamp(min=1e-9)).tolist())
    precision = " / ".join(f"{v:.2f}" for v in (overlap / guess.sum(0).clamp(min=1e-9)).tolist())
    logger.info("%-24s recall %s; precision %s", name, recall, precision)


@torch.no_grad()
def main(args: argparse.Namespace) -> None:
    encoder = MobileNetV2Features().eval()
    encoder.load_weights(args.encoder)
    train_f, train_s = training_cells(args, encoder)
    train_f = train_f.float()  # once: every held-out photo searches all of it
    train_mean = train_s.mean(0)
    with torch.enable_grad():
        head = train_head(train_f, train_s, args.epochs, args.seed)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    truth, guesses = [], {}

    def add(name: str, guess: torch.Tensor) -> None:
        guesses.setdefault(name, []).append(guess)

    for path in tqdm(photos, desc="Held-out photos", unit="photo"):
        image = opened(path)
        features, shares, cells = describe(encoder, image)
        truth.append(shares)
        add("training cells' mean", train_mean.expand_as(shares))
        if args.predicted:
            predicted = lab_of(opened(Path(args.predicted) / f"{path.stem}_color.png"))
            add("the model's own colours", class_shares(predicted, PRED_CHROMA_MIN, cells))
        index = nearest(features, train_f, max(args.neighbours))
        for k in args.neighbours:
            add(f"{k} nearest cells", train_s[index[:, :k]].mean(1))
        add("trained head", F.softmax(head(features), 1))
    truth_all = torch.cat(truth)
    logger.info("%d held-out photos (%d cells), %d training cells; per class %s", len(photos), len(truth_all), len(train_f),
                " / ".join(LABELS))
    for name, guess in guesses.items():
        report(name, torch.cat(guess), truth_all)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    main(parse_args())

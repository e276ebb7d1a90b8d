#!/usr/bin/env python
"""How much of a photo's colours do the training photos that look most like it (in gray) know?

    python train/probe_neighbours.py --pairs pairs/train256 --photos runs/proxy \
        --encoder runs/encoder/mobilenet_v2.safetensors [--predicted runs/u-proxy-out]

A probe of what limits the default model (its card, "what limits it"), not part of
training. Each held-out colour photo of ``--photos`` is described by its a*b* histogram
(22x22 bins over [-110, 110], as ``ab_hist``) and by the share of its pixels in each hue
class of ``hue_recall`` (chroma >= 15). Its k nearest training photos (``--pairs``' train
split) by the frozen encoder's pooled features on the gray photo give a guess of both: the
mean of their histograms and shares. Printed for k = 5, 20, 50, against the same from k
random training photos and from the training set's mean histogram: the mean histogram
intersection with the photo's own, the summed absolute error of the class shares, and,
over photos, the correlation of each class's guessed share with the true one. With
``--predicted`` (a folder of the model's outputs, ``NAME_color.png`` for ``NAME.png``), the
same for the model's own colours.

``--features block10`` (default) pools block 10 of the MobileNetV2 (mean and standard
deviation of its 64 channels), the last block with Keras's ImageNet weights as they were
(the nsfwjs encoder's blocks 11-16 were fine-tuned for its own classes); ``top`` pools
the final 1,280 features. The training photos' descriptions are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from datasets import load_from_disk
from PIL import Image
from tqdm.auto import tqdm

from colorgan_hf.color import rgb_to_lab
from colorgan_hf.encoders import MobileNetV2Features
from colorgan_hf.metrics.functional import HUE_CLASSES, TRUTH_CHROMA_MIN, ab_histograms, chroma, hue_class

logger = logging.getLogger("colorgan_hf.probe_neighbours")

BATCH = 64  # photos through the encoder at once
DESCRIBE_SIDE = 128  # photos are described at 128x128: the shares and histograms, not detail
ENCODER_SIDE = 224  # the classifier's own input size


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The inputs every probe of the default model's limit takes (this one and ``probe_cells.py``)."""
    parser.add_argument("--pairs", required=True, help="A pair set from `colorgan build-dataset`; its train split is what is searched.")
    parser.add_argument("--photos", required=True, help="Folder of held-out colour photos (.png/.jpg) to probe.")
    parser.add_argument("--encoder", required=True, help="The MobileNetV2 written by train/import_encoder.py.")
    parser.add_argument("--predicted", default=None, help="Folder of the model's outputs for --photos (NAME_color.png).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_probe_arguments(parser)
    parser.add_argument("--features", choices=("block10", "block12", "top"), default="block10",
                        help="Which encoder features are pooled to compare photos (see above; block12 is the stride-16 "
                             "map that unet_semantic reads beside top).")
    parser.add_argument("--neighbours", type=int, nargs="+", default=[5, 20, 50], help="The k nearest training photos averaged.")
    parser.add_argument("--cache", default=None, help="An .npz file for the training photos' descriptions (default: beside --encoder).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random-photos control.")
    return parser.parse_args(argv)


def lab_of(image: Image.Image) -> torch.Tensor:
    """The photo in CIE Lab, (1, 3, H, W)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])


def class_shares(lab: torch.Tensor, min_chroma: float, cells: tuple[int, int]) -> torch.Tensor:
    """(cells, 6): the share of each cell's pixels in each hue class with chroma >= min_chroma, then the rest (neutral)."""
    coloured = chroma(lab) >= min_chroma
    classes = hue_class(lab)
    onehot = torch.stack([(coloured & (classes == k)).float() for k in range(len(HUE_CLASSES))], 1)  # (1, 5, H, W)
    shares = F.adaptive_avg_pool2d(onehot, cells)[0].flatten(1).T  # (cells, 5)
    return torch.cat([shares, (1 - shares.sum(1, keepdim=True)).clamp(min=0)], 1)


def describe(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(22, 22) a*b* histogram summing to 1 (as ``ab_hist``) and (5,) share of the pixels of each
    hue class with chroma >= 15 (as ``hue_recall``'s truth)."""
    lab = lab_of(image.convert("RGB").resize((DESCRIBE_SIDE, DESCRIBE_SIDE)))  # (1, 3, 128, 128)
    shares = class_shares(lab, TRUTH_CHROMA_MIN, (1, 1))[0, : len(HUE_CLASSES)]
    return ab_histograms(lab)[0].numpy(), shares.double().numpy()


@torch.no_grad()
def embed(encoder: MobileNetV2Features, images: list[Image.Image], features: str) -> np.ndarray:
    """(N, D) unit-length pooled encoder features of the gray photos."""
    gray = torch.stack([torch.from_numpy(np.asarray(i.convert("L").resize((ENCODER_SIDE, ENCODER_SIDE)), dtype=np.float32) / 255)[None]
                        for i in images])  # (N, 1, 224, 224) in [0, 1]
    if features == "top":
        pooled = encoder(gray)[1].mean((2, 3))  # (N, 1280)
    else:
        x = encoder.features_after(gray, int(features.removeprefix("block")))  # block 10: (N, 64, 14, 14); 12: (N, 96, 14, 14)
        pooled = torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)  # (N, 2C)
    return F.normalize(pooled, dim=1).numpy()


def embed_all(encoder: MobileNetV2Features, images: list[Image.Image], features: str) -> np.ndarray:
    return np.concatenate([embed(encoder, images[start : start + BATCH], features) for start in range(0, len(images), BATCH)])


def cached(cache: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, from ``cache`` when it was written for the same ``key`` (else
    computed and written there: to a temporary name, then renamed)."""
    if cache.exists():
        with np.load(cache) as saved:
            if "key" in saved.files and str(saved["key"]) == key:
                return {name: saved[name] for name in saved.files if name != "key"}
        logger.info("%s was made from other inputs: computing again", cache)
    arrays = compute()
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, **arrays, key=np.array(key))
    tmp.replace(cache)
    return arrays


def inputs_key(pairs: str, rows: int, encoder: str, what: str) -> str:
    """What a cache of the training rows' descriptions depends on: the pair set, the encoder file and ``what``."""
    return f"{Path(pairs).resolve()}|{rows}|{hashlib.sha256(Path(encoder).read_bytes()).hexdigest()}|{what}"


def training_descriptions(args: argparse.Namespace, encoder: MobileNetV2Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, histograms and class shares of the pair set's training photos, from the cache
    when it was made from the same pair set, encoder file and features."""
    train = load_from_disk(args.pairs)["train"]

    def compute() -> dict[str, np.ndarray]:
        features, histograms, shares = [], [], []
        for start in tqdm(range(0, len(train), BATCH), desc="Training photos", unit="batch"):
            photos = train[start : start + BATCH]["color"]
            features.append(embed(encoder, photos, args.features))
            for photo in photos:
                h, s = describe(photo)
                histograms.append(h)
                shares.append(s)
        return {"features": np.concatenate(features), "histograms": np.stack(histograms), "shares": np.stack(shares)}

    saved = cached(Path(args.cache or Path(args.encoder).with_name(f"neighbours_{args.features}.npz")),
                   inputs_key(args.pairs, len(train), args.encoder, args.features), compute)
    return saved["features"], saved["histograms"], saved["shares"]


def opened(path: Path) -> Image.Image:
    """The photo at ``path`` in RGB, its file closed."""
    with Image.open(path) as image:
        return image.convert("RGB")


def report(name: str, histograms: np.ndarray, shares: np.ndarray, truth_h: np.ndarray, truth_s: np.ndarray) -> None:
    intersection = np.minimum(histograms, truth_h).sum(axis=(1, 2)).mean()
    error = np.abs(shares - truth_s).sum(axis=1).mean()

    def corr(k: int) -> str:  # over photos; undefined where either side does not vary
        if np.ptp(shares[:, k]) == 0 or np.ptp(truth_s[:, k]) == 0:
            return "n/a"
        return f"{np.corrcoef(shares[:, k], truth_s[:, k])[0, 1]:.2f}"

    correlation = " / ".join(corr(k) for k in range(len(HUE_CLASSES)))
    logger.info("%-28s histogram intersection %.3f; class-share error %.3f; share correlation r/y/g/b/p %s",
                name, intersection, error, correlation)


def main(args: argparse.Namespace) -> None:
    encoder = MobileNetV2Features().eval()
    encoder.load_weights(args.encoder)
    train_f, train_h, train_s = training_descriptions(args, encoder)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [opened(p) for p in photos]
    truth = [describe(i) for i in images]
    truth_h, truth_s = np.stack([t[0] for t in truth]), np.stack([t[1] for t in truth])
    logger.info("%d held-out photos, %d training photos, %s features", len(photos), len(train_f), args.features)
    report("training set's mean", np.broadcast_to(train_h.mean(0), truth_h.shape), np.broadcast_to(train_s.mean(0), truth_s.shape),
           truth_h, truth_s)
    if args.predicted:
        predicted = [describe(opened(Path(args.predicted) / f"{p.stem}_color.png")) for p in photos]
        report("the model's own colours", np.stack([d[0] for d in predicted]), np.stack([d[1] for d in predicted]), truth_h, truth_s)
    nearest = np.argsort(-(embed_all(encoder, images, args.features) @ train_f.T), axis=1)
    rng = np.random.default_rng(args.seed)
    for k in args.neighbours:
        report(f"{k} nearest training photos", train_h[nearest[:, :k]].mean(1), train_s[nearest[:, :k]].mean(1), truth_h, truth_s)
        chosen = rng.choice(len(train_f), (len(photos), k))
        report(f"{k} random training photos", train_h[chosen].mean(1), train_s[chosen].mean(1), truth_h, truth_s)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    main(parse_args())

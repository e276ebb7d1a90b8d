"""Everything a training run is made of: the presets, the data loaders, the losses, one
:func:`train_step`, evaluation, checkpoints and pictures. ``train/train.py`` is the
script around it (arguments, the loop); the bench and the tests import the same pieces.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import statistics
import warnings
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from .color import normalize_ab, rgb_to_lab
from .data import DECODE_ERRORS, PairTransform, build_pair_dataset, undecoded, with_row_index
from .encoders import MobileNetV2Features
from .errors import ColorGANError
from .files import atomic_path, write_atomic
from .images import find_images, save_image_atomic, to_pil
from .models import DISCRIMINATORS, GENERATORS, ColorDiscriminator, ColorGenerator, GANLoss, SemanticUNetGenerator
from .rebalance import NUM_BINS, ChromaRebalancer, ab_histogram
from .registry import HISTORY_FILE, SAMPLE_NAME, SAMPLES_DIR, load_model

logger = logging.getLogger(__name__)

# Preset values fill every training flag left unset on the command line.
PRESETS: dict[str, dict] = {
    # Section 3-4 of the paper: 120x120 RGB, its networks, Adam 5e-4, batch 64, MSE for the
    # generator, BCE with noisy 0/1 label matrices for the discriminator. The paper writes
    # "mean squared error was chosen for the generator loss" yet trains a GAN (its eq. 1):
    # we add the adversarial term with a small weight, 1e-3 (as SRGAN weighs it against a
    # pixel loss), so the generator error stays the MSE that Table 1 reports while the
    # discriminator still shapes it. --adv_weight 0 gives the pure-MSE reading.
    "paper": dict(architecture="paper", resolution=120, learning_rate=5e-4, adam_beta1=0.9, train_batch_size=64,
                  pixel_loss="mse", pixel_weight=1.0, class_weight=0.0, adv_weight=1e-3, label_noise=0.1, rebalance_lambda=0.0,
                  target_saturation=1.0, colourfulness_weight=0.0, perceptual_weight=0.0, gen_base_channels=32, disc_base_channels=32),
    # Ours, as shipped: the Lab U-Net regressing a*b* from L with L1 (sharper than MSE,
    # less drawn to the mean), each pixel weighted by its colour's rarity mixed with the
    # uniform distribution at 0.95 (Zhang's 0.5 turns everything sepia on these photos),
    # plus pix2pix's PatchGAN term. The PatchGAN is base 32: base 64 costs 4.4x the
    # generator per image on a CPU (bench/model_stats.py). The shipped model was pretrained
    # without the GAN term (--adv_weight 0, "NoGAN"), then fine-tuned with it.
    # `--architecture unet_bins --class_weight 1 --pixel_weight 10` gives the classification
    # variant (Zhang et al.'s a*b* bins; measured in the card's ablation, not shipped).
    "default": dict(architecture="unet", resolution=128, learning_rate=2e-4, adam_beta1=0.5, train_batch_size=16,
                    pixel_loss="l1", pixel_weight=100.0, class_weight=0.0, adv_weight=0.5, label_noise=0.0, rebalance_lambda=0.95,
                    target_saturation=1.0, colourfulness_weight=0.0, perceptual_weight=0.0, gen_base_channels=32, disc_base_channels=32),
}
CHECKPOINT_PREFIX = "checkpoint-"
LOGS_DIR = "logs"  # the trackers' runs
TRACKER_PROJECT = "colorgan"  # the trackers' project: TensorBoard writes under logs/colorgan
LOSS_PLOT = "loss_curves.png"
# Everything a run writes into its output folder besides the checkpoints (glob patterns): what --overwrite_output_dir removes.
RUN_OUTPUTS = ("generator", "discriminator", f"{SAMPLES_DIR}/step-*.png", f"{LOGS_DIR}/{TRACKER_PROJECT}", HISTORY_FILE, LOSS_PLOT)
# A checkpoint is complete once this file is in it (written last).
COMPLETE_MARKER = "complete.json"


@dataclass(frozen=True)
class LossWeights:
    """How the generator's loss is put together; see :func:`train_step`."""

    pixel_loss: str = "l1"
    pixel_weight: float = 1.0
    class_weight: float = 0.0
    adv_weight: float = 0.0
    label_noise: float = 0.0
    # DDColor's lever: the true a*b* the generator is taught (and the discriminator sees as
    # real) have their chroma multiplied by this, so the conditional mean it learns is less gray.
    target_saturation: float = 1.0
    # Weight of the per-image shortfall of mean chroma against the (boosted) truth: a push
    # towards colour that, unlike the pixel loss, does not care where the colour goes.
    colourfulness_weight: float = 0.0
    # Weight of the distance between what a frozen ImageNet network sees in the output and in
    # the truth (DeOldify's feature loss), beside the pixel loss; see :class:`PerceptualLoss`.
    perceptual_weight: float = 0.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LossWeights":
        return cls(args.pixel_loss, args.pixel_weight, args.class_weight, args.adv_weight, args.label_noise,
                   args.target_saturation, args.colourfulness_weight, args.perceptual_weight)

    @property
    def reshapes_ab(self) -> bool:
        """Whether these losses read the target as a*b* (and so need an a*b* generator)."""
        return self.target_saturation != 1.0 or bool(self.colourfulness_weight)


# ------------------------------------------------------------------------------ networks


def build_networks(args: argparse.Namespace) -> tuple[ColorGenerator, ColorDiscriminator]:
    """The generator (new, or from ``--init_generator``) and its matching discriminator.

    The starting weights bring their architecture and sizes: an explicit ``--gen_base_channels``
    (or an ``--architecture`` trained as the start's own) that they override gets a warning.
    """
    # Only the paper's networks have a fixed input size; the U-Nets and the PatchGAN take any.
    fixed_size = GENERATORS[args.architecture].size_options(args.resolution)
    if not args.init_generator:
        generator = ColorGenerator(architecture=args.architecture, base_channels=args.gen_base_channels, **fixed_size)
    else:
        start = load_model(args.init_generator)
        if start.input_size not in (None, args.resolution):
            raise ColorGANError(f"{args.init_generator}: a {start.architecture} generator of input size {start.input_size} "
                                f"cannot start a {args.preset} run at resolution {args.resolution}")
        if args.architecture in (start.architecture, start.net.TRAINS_UNDER):
            generator = start  # the architecture and its sizes come from the starting weights
            logger.info(f"loaded every weight of {args.init_generator}: a {start.architecture} generator ({_options_text(start)})")
        else:
            # Another head on the same trunk: the trunk's sizes and weights come from the starting weights.
            options = {k: v for k, v in start.net.config().items() if k in inspect.signature(GENERATORS[args.architecture]).parameters}
            generator = ColorGenerator(architecture=args.architecture, **options)
            own = generator.state_dict()
            shared = {k: v for k, v in start.state_dict().items() if k in own and own[k].shape == v.shape}
            if not shared:
                raise ColorGANError(f"{args.init_generator}: a {start.architecture} generator cannot start a {args.preset} run "
                                    f"({args.architecture}): they share no weights")
            generator.load_state_dict(shared, strict=False)
            logger.info(f"loaded {len(shared)} of {len(own)} generator tensors from {args.init_generator} (a {start.architecture}) "
                        f"into a {args.architecture} generator ({_options_text(generator)})")
        _warn_overridden(args, generator)
    problem = resolution_problem(args.resolution, generator.architecture, generator.stride, adversarial=bool(args.adv_weight))
    if problem:
        raise ColorGANError(problem)
    encoder_file = getattr(args, "init_encoder", None)
    if isinstance(generator.net, SemanticUNetGenerator):
        if encoder_file:
            generator.net.load_encoder(encoder_file)
            logger.info(f"loaded the frozen encoder from {encoder_file}")
        elif not (args.init_generator and isinstance(start.net, SemanticUNetGenerator)):
            raise ColorGANError(f"a {generator.architecture} generator needs its encoder: give --init_encoder FILE (made by "
                                "train/import_encoder.py) or --init_generator a generator that has one (unet_semantic, semantic_bins)")
    elif encoder_file:
        raise ColorGANError(f"--init_encoder is for generators with a semantic encoder (unet_semantic, semantic_bins), not {generator.architecture}")
    if LossWeights.from_args(args).reshapes_ab and not generator.net.AB_TARGET:
        raise ColorGANError(f"--target_saturation and --colourfulness_weight act on a*b*; a {generator.architecture} "
                            "generator predicts RGB")
    discriminator = ColorDiscriminator(architecture=generator.discriminator_architecture, base_channels=args.disc_base_channels,
                                       **fixed_size)
    return generator.train(), discriminator.train()


def _options_text(generator: ColorGenerator) -> str:
    return ", ".join(f"{key} {value}" for key, value in generator.net.config().items())


def _warn_overridden(args: argparse.Namespace, generator: ColorGenerator) -> None:
    """One warning naming the flags given on the command line that the ``--init_generator`` weights override."""
    explicit = set(vars(args)) - set(getattr(args, "preset_values", ()))
    overridden = []
    if "architecture" in explicit and args.architecture != generator.architecture:
        overridden.append(f"--architecture {args.architecture} (it is a {generator.architecture} generator)")
    width = generator.net.config().get("base_channels")
    if "gen_base_channels" in explicit and width is not None and args.gen_base_channels != width:
        overridden.append(f"--gen_base_channels {args.gen_base_channels} (its width is {width})")
    if overridden:
        logger.warning(f"--init_generator {args.init_generator} overrides {' and '.join(overridden)}: "
                       f"its weights are trained as saved")


def resolution_problem(resolution: int, architecture: str, stride: int, adversarial: bool = True) -> str | None:
    """Why ``--resolution`` crops cannot train a generator of ``architecture`` and ``stride``; None when they can.

    A U-Net halves each side ``depth`` times and concatenates its skips on the way back up, so a
    side that is no multiple of its stride fails at the first step; the discriminator (when the
    adversarial term is on) must have a patch left to judge; the paper's networks are built for
    the crop's exact size, which their configs bound so that the saved model loads again.
    """
    net_class = GENERATORS[architecture]
    fixed_sizes = net_class.size_options(resolution)
    high = min((cls.BOUNDS.get(key, (0, math.inf))[1] for key in fixed_sizes
                for cls in (net_class, DISCRIMINATORS[net_class.discriminator])), default=math.inf)

    def fits(side: int) -> bool:
        return side % stride == 0 and side <= high and (not adversarial or _discriminator_takes(net_class, side))

    if fits(resolution):
        return None
    # The discriminator takes every side above its smallest, so the valid sides run from `low` to `high`.
    low = next(side for side in count(stride, stride) if fits(side) or side > high)
    below, above = resolution // stride * stride, -(-resolution // stride) * stride
    nearest = [side for side in dict.fromkeys((below, above)) if low <= side <= high]
    nearest = nearest or [low if resolution < low else int(high) // stride * stride]
    span = f"from {low} to {int(high)}" if math.isfinite(high) else f"from {low} up"
    if low > stride:
        span += f" (below {low} its discriminator has no patch left to judge)"
    fixed = " (its networks are built for the crop's size)" if fixed_sizes else ""
    return (f"--resolution {resolution} does not fit a {architecture} generator: it takes multiples of its stride {stride} {span}"
            f"{fixed}; nearest valid: {' or '.join(map(str, nearest))}")


def _discriminator_takes(net_class: type, side: int) -> bool:
    """Whether the discriminator trained beside ``net_class`` leaves a logit for side x side images (tried at width 1:
    the width changes no shape), without touching the seeded random state."""
    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a side too small builds empty layers, which torch warns of: that is the answer sought
        probe = ColorDiscriminator(architecture=net_class.discriminator, base_channels=1, **net_class.size_options(side)).eval()
        channels = next(m.in_channels for m in probe.modules() if isinstance(m, nn.Conv2d))
        try:
            probe(torch.zeros(1, channels, side, side))
        except RuntimeError:
            return False
    return True


# ---------------------------------------------------------------------------------- data


def load_pairs(args: argparse.Namespace, main_process_first) -> "datasets.DatasetDict":  # noqa: F821
    """The train/test DatasetDict, from disk or built from folders (by the main process first)."""
    import datasets

    if args.dataset_dir:
        try:
            pairs = datasets.load_from_disk(args.dataset_dir)
        except FileNotFoundError as error:
            if Path(args.dataset_dir).is_dir() and find_images(args.dataset_dir):
                raise ColorGANError(f"--dataset_dir {args.dataset_dir}: not a saved pair set: it looks like a folder of photos; "
                                    f"make a pair set of it with `colorgan build-dataset {args.dataset_dir} -o <pairs>` and pass "
                                    f"--dataset_dir <pairs>, or train on the photos directly with --train_data_dir "
                                    f"{args.dataset_dir}") from None
            raise ColorGANError(f"{args.dataset_dir}: not a saved pair set ({error})") from None
        _warn_if_upscaled(pairs["train"], args.resolution, args.dataset_dir)
    else:
        mode = GENERATORS[args.architecture].TRAINING_RESIZE
        size = args.resolution if mode == "square" else 2 * args.resolution
        with main_process_first():
            pairs, report = build_pair_dataset(args.train_data_dir, size=size, resize_mode=mode, seed=args.seed)
        logger.info(f"pair set: {json.dumps(report.summary())}")
    if len(pairs["train"]) == 0:
        raise ColorGANError("the training split has no usable images")
    if args.max_train_samples:
        pairs["train"] = pairs["train"].select(range(min(args.max_train_samples, len(pairs["train"]))))
    if args.max_eval_samples:
        pairs["test"] = pairs["test"].select(range(min(args.max_eval_samples, len(pairs["test"]))))
    return pairs


def _warn_if_upscaled(split, resolution: int, where: str, rows: int = 32) -> None:
    """One warning when the pair set's images (their short side, read from the headers of the first ``rows``)
    are smaller than the training crops, which are then cut from upscaled images."""
    sides = [side for value in undecoded(split).select(range(min(rows, len(split))))["color"]
             if (side := _short_side(value)) is not None]
    if sides and min(sides) < resolution:
        logger.warning(f"--resolution {resolution} is larger than the images of the pair set {where} (short side {min(sides)}): "
                       f"every crop is upscaled from them; train at --resolution {min(sides)} or less, or rebuild the pair set "
                       f"with a `colorgan build-dataset --size` of at least {resolution}")


def source_sample_weights(sources: list[str], power: float) -> list[float]:
    """Per-photo sampling weights that draw each source in proportion to (its count)**power."""
    counts = {s: sources.count(s) for s in set(sources)}
    return [counts[s] ** power / counts[s] for s in sources]


def _collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {"rgb": torch.stack([r["rgb"] for r in rows]), "gray": torch.stack([r["gray"] for r in rows])}


def make_loaders(pairs, resolution: int, batch_size: int, seed: int = 0, balance_sources: float | None = None,
                 num_workers: int = 0) -> tuple[DataLoader, DataLoader, PairTransform]:
    """Training loader (random ``resolution`` crops and flips; with ``balance_sources`` each source drawn in
    proportion to its count to that power), test loader (central crops), and the training transform."""
    train_transform = PairTransform(resolution, train=True, seed=seed)
    train_set = with_row_index(pairs["train"]).with_transform(train_transform)
    test_set = undecoded(pairs["test"]).with_transform(PairTransform(resolution, train=False))
    sampler = None
    if balance_sources is not None:
        sources = pairs["train"]["source"]
        weights = torch.tensor(source_sample_weights(sources, balance_sources), dtype=torch.double)
        sampler = WeightedRandomSampler(weights, num_samples=len(sources), replacement=True)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, collate_fn=_collate,
                              num_workers=num_workers, drop_last=len(train_set) > batch_size)
    test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, collate_fn=_collate, num_workers=num_workers)
    return train_loader, test_loader, train_transform


def _short_side(value: dict) -> int | None:
    """The short side of a stored image ({"bytes", "path"}) from its header alone; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]) as image:
            return min(image.size)
    except (*DECODE_ERRORS, KeyError, TypeError):
        return None


class DeviceBatches:
    """The training split decoded once into memory on ``device``, then served as batches
    with no loader processes and no decoding per epoch (``train.py --preload_data``).

    On a GPU a small network at 120-128 px trains faster than workers decode PNG/JPEG: the
    paper's 2,700 pairs are 156 MB here as uint8 and 9,000 pairs at 128 px are 590 MB, both
    far below GPU memory. Each image is kept as its central square (the side of the
    smallest image, at least ``resolution``); each epoch draws a shuffle, a random
    ``resolution`` crop and a random horizontal flip per image from (seed, epoch) alone, so
    a resumed run sees exactly the batches of an uninterrupted one. Each process takes its
    own slice of every batch-sized stretch of the shuffle (the last partial batch is dropped,
    like ``DataLoader(drop_last=True)``). Set :attr:`epoch` before iterating an epoch.
    """

    def __init__(self, split, resolution: int, batch_size: int, seed: int = 0, device: torch.device | str = "cpu",
                 process_index: int = 0, num_processes: int = 1) -> None:
        rows = with_row_index(split)
        sides = [side for value in rows["color"] if (side := _short_side(value)) is not None]
        if not sides:
            raise ColorGANError("the training split has no readable image")
        # The loader's own decoding, central crops and skipping of unreadable rows, at the common square side.
        decode = PairTransform(max(resolution, min(sides)), train=False)
        chunks = []
        for start in range(0, len(rows), 256):
            pairs = decode(rows[start:start + 256])
            if pairs["rgb"]:
                chunks.append(torch.cat([torch.stack(pairs["rgb"]), torch.stack(pairs["gray"])], dim=1).mul_(255).round_().to(torch.uint8))
        self.data = torch.cat(chunks).to(device)  # (N, 4, S, S) uint8: RGB and gray
        self.skipped = decode.skipped
        self.resolution, self.batch_size, self.seed = resolution, batch_size, seed
        self.process_index, self.num_processes = process_index, num_processes
        self.epoch = 0

    def __len__(self) -> int:
        return max(len(self.data) // (self.batch_size * self.num_processes), 1)

    def batches(self, skip: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """This process's batches of epoch :attr:`epoch`, from the ``skip``-th on."""
        n, side, crop = len(self.data), self.data.shape[-1], self.resolution
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=rng)
        tops, lefts = torch.randint(0, side - crop + 1, (2, n), generator=rng)
        flips = torch.rand(n, generator=rng) < 0.5
        span = self.batch_size * self.num_processes
        steps = len(self)
        order = order[: steps * span].view(steps, self.num_processes, -1)[:, self.process_index] if n >= span else order[None]
        offsets = torch.arange(crop)
        for step in range(skip, steps):
            index = order[step]  # (B,)
            rows = (tops[index, None] + offsets).to(self.data.device)  # (B, crop)
            cols = torch.where(flips[index, None], lefts[index, None] + crop - 1 - offsets, lefts[index, None] + offsets)
            cols = cols.to(self.data.device)
            picked = self.data[index.to(self.data.device)]  # (B, 4, S, S)
            picked = picked.gather(2, rows[:, None, :, None].expand(-1, 4, -1, side))  # (B, 4, crop, S)
            picked = picked.gather(3, cols[:, None, None, :].expand(-1, 4, crop, -1)).float().div_(255.0)  # (B, 4, crop, crop)
            yield {"rgb": picked[:, :3], "gray": picked[:, 3:]}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.batches()


def training_ab_counts(loader: DataLoader, batches: int) -> torch.Tensor:
    """ab histogram (:func:`ab_histogram` bins) of the true colours of the first ``batches`` training batches."""
    counts = torch.zeros(NUM_BINS * NUM_BINS)
    for batch in islice(loader, batches):
        counts += ab_histogram(normalize_ab(rgb_to_lab(batch["rgb"].float())[:, 1:])).cpu()
    return counts


# -------------------------------------------------------------------------------- losses


def pixel_error(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The L1 or squared error of each value (``kind``: "l1" or "mse"), in float32."""
    return (output.float() - target.float()).abs() if kind == "l1" else (output.float() - target.float()) ** 2


def pixel_loss(output: torch.Tensor, target: torch.Tensor, kind: str, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean L1 or squared error, each pixel weighted by ``weights`` (B, 1, H, W) when given."""
    error = pixel_error(output, target, kind)
    return (error * weights).mean() if weights is not None else error.mean()


# Added to the squared chroma (a*b* in [-1, 1]) so that sqrt's gradient stays finite at gray;
# its root, 0.001, is about 0.1 Lab units of chroma.
CHROMA_EPS = 1e-6


def boost_chroma(ab: torch.Tensor, factor: float) -> torch.Tensor:
    """a*b* (B, 2, H, W) in [-1, 1] with its chroma multiplied by ``factor``, hue kept.

    Each pixel's factor is capped so that neither channel leaves [-1, 1] (clamping the
    channels apart would turn the hue of the most saturated colours).
    """
    if factor == 1.0:
        return ab
    peak = ab.abs().amax(dim=1, keepdim=True).clamp_min(CHROMA_EPS)  # (B, 1, H, W)
    return ab * (1.0 / peak).clamp(max=factor)


def colourfulness_shortfall(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of how far each image's mean chroma falls below its target's (0 when above)."""
    def mean_chroma(ab: torch.Tensor) -> torch.Tensor:
        return (ab.float().square().sum(dim=1) + CHROMA_EPS).sqrt().flatten(1).mean(dim=1)  # (B,)

    return torch.relu(mean_chroma(target) - mean_chroma(output)).mean()


class PerceptualLoss(nn.Module):
    """How differently a frozen ImageNet network sees the output and the truth (Johnson et al. 2016).

    DeOldify trains its generator with such a feature loss (VGG's) before its GAN stage. The
    pixel loss pays least, when a gray patch could be green grass or dry grass, for the
    per-channel median, a brown that is neither; a classifier's features are not linear in
    colour, so their distance need not favour that middle. The network is MobileNetV2 with
    its RGB stem (``train/import_encoder.py --rgb``), read after blocks whose weights are
    Keras's ImageNet ones (nsfwjs's authors tuned blocks 11-16).
    """

    # The last block at stride 4 (24 channels) and at stride 8 (32), and one at stride 16 (64).
    BLOCKS = (2, 5, 9)

    def __init__(self, encoder_file: str | os.PathLike, blocks: tuple[int, ...] = BLOCKS) -> None:
        super().__init__()
        self.encoder = MobileNetV2Features(in_channels=3)
        if not blocks or not all(0 <= k < len(self.encoder.blocks) for k in blocks):
            raise ColorGANError(f"perceptual loss blocks must be among 0-{len(self.encoder.blocks) - 1}, got {list(blocks)}")
        self.blocks = tuple(sorted(set(blocks)))
        self.encoder.load_weights(encoder_file)
        self.encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.encoder.eval()  # frozen: its batch-norm statistics are the classifier's own
        return self

    def forward(self, output_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        """Mean over the blocks of the L1 distance of the features, each relative to the truth's mean magnitude there."""
        with torch.no_grad():
            wanted = self.encoder.block_features(target_rgb.float(), self.blocks)
        got = self.encoder.block_features(output_rgb.float(), self.blocks)
        # Relative, so that no block weighs more for the scale of its activations alone.
        terms = [(g - w).abs().mean() / w.abs().mean().clamp_min(CHROMA_EPS) for g, w in zip(got, wanted)]
        return torch.stack(terms).mean()


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the base learning rate at an optimizer step: linear warm-up, then constant or cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train_step(batch: dict[str, torch.Tensor], generator, discriminator, opt_g, opt_d, losses: LossWeights, gan_loss: GANLoss,
               rebalancer: ChromaRebalancer | None, accelerator, perceptual: PerceptualLoss | None = None) -> dict[str, torch.Tensor]:
    """One optimisation step of the discriminator (when the adversarial term is on), then of the generator.

    ``generator`` and ``discriminator`` may be wrapped by Accelerate (DDP); their
    architectures' own methods are reached through ``unwrap_model``. ``perceptual`` is
    needed when ``losses.perceptual_weight`` is set. Returns the loss terms (0-dim
    tensors): ``g_pixel``, ``g_class``, ``g_colour``, ``g_perceptual``, ``g_adv``, ``g_total``, ``d_loss``.
    """
    g_net = accelerator.unwrap_model(generator).net
    d_net = accelerator.unwrap_model(discriminator).net
    gen_input, truth = g_net.training_pair(batch)
    # The truth itself at 1, which RGB generators always have (build_networks refuses them any other value).
    target = boost_chroma(truth, losses.target_saturation)
    output = generator(gen_input)
    fake = g_net.image(output)
    zero = torch.zeros((), device=gen_input.device)

    # Discriminator: real and fake in one forward, so DDP sees a single pass. With the
    # adversarial term off it cannot influence the generator, so it is not trained at all.
    d_loss = zero
    if losses.adv_weight:
        judged = torch.cat([d_net.judge_input(gen_input, target), d_net.judge_input(gen_input, fake.detach())])
        real_logits, fake_logits = discriminator(judged).chunk(2)
        d_loss = gan_loss(real_logits, True) + gan_loss(fake_logits, False)
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss)
        opt_d.step()

    # Generator: pixel loss and the architecture's own loss (both re-balanced by the rarity
    # of the true colour), the colourfulness shortfall, plus the adversarial term. The D
    # gradients this backward leaves are cleared before D's next step; no_sync spares their all-reduce.
    weights = rebalancer(truth) if rebalancer is not None else None
    g_pixel = pixel_loss(fake, target, losses.pixel_loss, weights)
    g_class = g_net.auxiliary_loss(output, target, weights) if losses.class_weight else None
    g_class = zero if g_class is None else g_class
    g_colour = colourfulness_shortfall(fake, target) if losses.colourfulness_weight else zero
    g_perceptual = zero
    if losses.perceptual_weight:
        if perceptual is None:
            raise ColorGANError("perceptual_weight is set but no PerceptualLoss was given to train_step")
        g_perceptual = perceptual(g_net.image_to_rgb(gen_input, fake), g_net.image_to_rgb(gen_input, target))
    g_adv = zero
    if losses.adv_weight:
        with accelerator.no_sync(discriminator):
            g_adv = gan_loss(discriminator(d_net.judge_input(gen_input, fake)), True)
    g_total = (losses.pixel_weight * g_pixel + losses.class_weight * g_class + losses.colourfulness_weight * g_colour
               + losses.perceptual_weight * g_perceptual + losses.adv_weight * g_adv)
    if not (torch.isfinite(g_total) and torch.isfinite(d_loss)):
        raise NonFiniteLossError(f"generator {g_total.item()}, discriminator {d_loss.item()}")
    opt_g.zero_grad(set_to_none=True)
    accelerator.backward(g_total)
    opt_g.step()
    return {"g_pixel": g_pixel.detach(), "g_class": g_class.detach(), "g_colour": g_colour.detach(),
            "g_perceptual": g_perceptual.detach(), "g_adv": g_adv.detach(),
            "g_total": g_total.detach(), "d_loss": d_loss.detach()}


def estimate_rebalancer(loader: DataLoader, args: argparse.Namespace, accelerator) -> ChromaRebalancer | None:
    """Per-pixel colour-rarity weights from the true ab of some training batches (summed over processes)."""
    if not args.rebalance_lambda or not GENERATORS[args.architecture].AB_TARGET:
        return None
    counts = training_ab_counts(loader, args.rebalance_batches)
    counts = accelerator.reduce(counts.to(accelerator.device), reduction="sum").cpu()
    return ChromaRebalancer(counts, lam=args.rebalance_lambda).to(accelerator.device)


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_generator(generator, loader: DataLoader, kind: str, accelerator) -> tuple[list[float], float, int]:
    """Pixel loss of the generator per test batch (one step of every process together), their size-weighted
    mean (the paper's Table 2), and the number of test pairs scored."""
    g_net = accelerator.unwrap_model(generator).net
    generator.eval()
    per_batch, sizes = [], []
    for batch in loader:
        gen_input, target = g_net.training_pair(batch)
        output = g_net.image(generator(gen_input))
        # One loss a pair: gather_for_metrics drops the pairs repeated to even out the last batch across
        # processes only from per-pair values (each pair has as many pixels, so their mean is the batch's loss).
        losses = pixel_error(output, target, kind).flatten(1).mean(1)  # (B,)
        gathered = accelerator.gather_for_metrics(losses)  # (pairs of this step, every process,)
        per_batch.append(gathered.mean().item())
        sizes.append(len(gathered))
    generator.train()
    mean = sum(value * n for value, n in zip(per_batch, sizes)) / max(sum(sizes), 1)
    return per_batch, mean, sum(sizes)


GRID_COLUMNS = ("gray input", "predicted", "original")


def save_grid(gray: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, path: Path) -> torch.Tensor:
    """Rows of gray | predicted | true under a header naming the columns, saved as PNG; returns the (3, H, W) grid."""
    from PIL import ImageDraw

    rows = [torch.cat([g.expand(3, -1, -1), f, r], dim=2) for g, f, r in zip(gray, fake, real)]
    grid = torch.cat(rows, dim=1).clamp(0, 1).cpu()
    header_height, tile = 14, gray.shape[-1]
    header = torch.ones(3, header_height, grid.shape[2])
    grid = torch.cat([header, grid], dim=1)
    image = to_pil(grid)
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(GRID_COLUMNS):
        draw.text((i * tile + 2, 1), name, fill=(0, 0, 0))
    save_image_atomic(image, path)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0


def save_loss_plot(history: list[dict], path: Path, smooth: int = 10) -> None:
    """Training losses (a running mean over ``smooth`` logged points) and the test loss; series that are all 0 are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("g_pixel", axes[0]), ("g_class", axes[0]), ("g_colour", axes[0]), ("g_perceptual", axes[0]), ("g_adv", axes[0]),
                    ("d_loss", axes[1]), ("test_pixel", axes[0])):
        points = [(h["step"], h[key]) for h in history if key in h]
        if not any(value > 0 for _, value in points):
            continue
        steps, values = zip(*points)
        if key != "test_pixel" and len(values) > smooth:
            values = [statistics.fmean(values[max(0, i - smooth + 1):i + 1]) for i in range(len(values))]
            key = f"{key} (running mean of {smooth})"
        ax.plot(steps, values, label=key, marker="." if key == "test_pixel" else None)
    axes[0].set_title("generator")
    axes[1].set_title("discriminator (BCE)")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.lines:
            ax.set_yscale("log")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "not trained (--adv_weight 0)", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- checkpoints


def list_checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders, oldest first (a ``.tmp`` folder is a save that never finished).

    A save is renamed to its final name only once complete; :func:`checkpoint_problem` tells
    whether one was damaged since, and :func:`latest_checkpoint` finds the newest whole one.
    """
    found = [p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> dict[str, int]:
    """Flush every file under ``folder`` (and the folders) to disk; returns {relative path: size in bytes}."""
    sizes = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            sizes[path.relative_to(folder).as_posix()] = path.stat().st_size
    for path in [*(p for p in folder.rglob("*") if p.is_dir()), folder]:
        _fsync_dir(path)
    return sizes


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None when it is whole.

    A checkpoint saved by :func:`save_checkpoint` holds :data:`COMPLETE_MARKER`, written
    last, listing each file's size: every file must be there at that size. One saved before
    the marker existed is accepted when its files load. In both cases the safetensors
    headers, the ``torch.save`` archives (their CRCs, nothing is unpickled) and the history
    must be readable.
    """
    import zipfile

    from safetensors import safe_open

    if not path.is_dir():
        return "not a folder"
    marker = path / COMPLETE_MARKER
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())["files"]
            recorded = {str(name): int(size) for name, size in recorded.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            return f"its {COMPLETE_MARKER} is unreadable ({error})"
        for name, size in recorded.items():
            file = path / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != size:
                return f"{name} is {file.stat().st_size} bytes, {size} when saved (truncated or changed)"
    elif not any(path.glob("model*.safetensors")):
        return f"no {COMPLETE_MARKER} and no model weights in it (an unfinished or emptied save)"
    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as error:  # safetensors raises its own error types
            return f"{file.name} is not readable ({error})"
    for file in sorted([*path.glob("*.bin"), *path.glob("*.pkl")]):
        try:
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
            return f"{file.name} is not readable ({error})"
        if bad is not None:
            return f"{file.name} is damaged (bad CRC of {bad})"
    if (path / HISTORY_FILE).exists():
        try:
            json.loads((path / HISTORY_FILE).read_text())
        except (OSError, ValueError) as error:
            return f"{HISTORY_FILE} is not readable ({error})"
    return None


def latest_checkpoint(output_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint that :func:`checkpoint_problem` finds whole, and the newer ones skipped (with why).

    Each skipped one gets a warning naming it.
    """
    skipped = []
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        logger.warning(f"skipping {path}: {problem}")
        skipped.append((path, problem))
    return None, skipped


def save_checkpoint(accelerator, output_dir: Path, step: int, limit: int | None, history: list[dict]) -> Path:
    """save_state into a temporary folder, flush it to disk, mark it complete, then rename: `latest` is never half-written.

    The logged history goes with the state, so a resumed run's curves start at step 0. The
    marker (:data:`COMPLETE_MARKER`, with every file's size) is written after everything
    else is on disk, and is what :func:`checkpoint_problem` checks on resume.
    """
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    tmp = output_dir / f"{CHECKPOINT_PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_atomic(tmp / HISTORY_FILE, json.dumps(history))
        sizes = _fsync_tree(tmp)
        write_atomic(tmp / COMPLETE_MARKER, json.dumps({"step": step, "files": sizes}, indent=1))
        _fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(output_dir)
        if limit:
            for old in list_checkpoints(output_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    logger.info(f"saved {final}")
    return final


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so a stop ends in a checkpoint."""

    def __init__(self) -> None:
        self.signal: int | None = None  # the number of the signal that asked to stop
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame) -> None:
        self.signal = signum
        logger.warning(f"signal {signum}: saving a checkpoint after this step, then stopping")

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def epoch_batches(loader, epoch: int, skip: int, accelerator) -> Iterator:
    """Epoch ``epoch`` of the loader (a DataLoader or :class:`DeviceBatches`, whose :attr:`~DeviceBatches.epoch`
    the caller sets with the transform's), skipping the first ``skip`` batches of a resumed epoch.

    The prepared DataLoader's seeded shuffle is keyed by its own count of passes, which a
    resumed run starts at 0: setting the epoch makes a resumed run draw the same order as one
    that never stopped.
    """
    if isinstance(loader, DeviceBatches):
        return loader.batches(skip)
    loader.set_epoch(epoch)
    return accelerator.skip_first_batches(loader, skip) if skip else loader


# ------------------------------------------------------------------------------ the run


class NonFiniteLossError(ColorGANError):
    """A loss became NaN or infinite; the step was not taken."""


@contextlib.contextmanager
def claim_output_dir(output_dir: Path, args: argparse.Namespace, accelerator) -> Iterator[None]:
    """Lock ``output_dir`` for this run and refuse to mix two runs in one folder.

    A folder that already holds checkpoints or a generator is only used again to resume
    (``--resume_from_checkpoint``) or when ``--overwrite_output_dir`` says to start over: then
    everything an earlier run wrote there (its checkpoints and :data:`RUN_OUTPUTS`) is removed,
    so that neither `latest` nor a push can pick up the old run; other files are left alone. The
    lock is held by the main process until the block ends.
    """
    import fcntl

    if not accelerator.is_main_process:
        yield
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    handle = open(output_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ColorGANError(f"{output_dir}: another training run is using this folder (it holds {output_dir / '.lock'}); "
                            f"wait for it to end, or choose another --output_dir") from None
    _recover_interrupted_saves(output_dir)
    used = list_checkpoints(output_dir) or (output_dir / "generator").is_dir()
    if used and not args.resume_from_checkpoint and not args.overwrite_output_dir:
        handle.close()
        raise ColorGANError(f"{output_dir}: holds an earlier run (checkpoints or generator/); resume it with "
                            f"--resume_from_checkpoint latest, start over with --overwrite_output_dir, or choose another --output_dir")
    if args.overwrite_output_dir and not args.resume_from_checkpoint:
        removed = _remove_run_outputs(output_dir)
        if removed:
            logger.warning(f"{output_dir}: --overwrite_output_dir: removed the earlier run's {', '.join(removed)}")
    try:
        yield
    finally:
        handle.close()


def _remove_run_outputs(output_dir: Path) -> list[str]:
    """Delete what a run writes into ``output_dir``: its checkpoints (and the damaged ones set aside) and
    :data:`RUN_OUTPUTS`, then samples/ and logs/ unless something else is in them; returns what was removed."""
    removed = []
    for pattern in (*(path.name for path in list_checkpoints(output_dir)), f"{CHECKPOINT_PREFIX}*.damaged", *RUN_OUTPUTS):
        paths = sorted(output_dir.glob(pattern))
        for path in paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if paths:
            removed.append(pattern)
    for folder in (SAMPLES_DIR, LOGS_DIR):
        with contextlib.suppress(OSError):  # missing, or holding files the run did not write
            (output_dir / folder).rmdir()
    return removed


def checkpoint_to_resume(args: argparse.Namespace, output_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The checkpoint ``--resume_from_checkpoint`` names (``latest``: the newest whole one) and the damaged newer ones
    skipped, with why; (None, []) to start from step 0. Called before anything loads, so a bad name costs no time.

    ``latest`` skips damaged checkpoints (a warning names each) and falls back to the newest
    whole one. It starts from step 0 only in a folder with no checkpoint at all and no
    finished ``generator/``.
    """
    if not args.resume_from_checkpoint:
        return None, []
    if args.resume_from_checkpoint == "latest":
        path, skipped = latest_checkpoint(output_dir)
        if path is None:
            if skipped:
                raise ColorGANError(f"{output_dir}: no checkpoint can be resumed from: "
                                    + "; ".join(f"{p.name}: {why}" for p, why in skipped)
                                    + " (start over with --overwrite_output_dir)")
            if (output_dir / "generator").is_dir():
                raise ColorGANError(f"{output_dir}: no checkpoint to resume from, but a finished generator/ is there: "
                                    f"refusing to start over on top of it (use --overwrite_output_dir to do that)")
            logger.warning(f"no checkpoint in {output_dir}: starting a new run from step 0")
            return None, []
        if skipped:
            logger.warning(f"resuming from {path.name} instead of the damaged {', '.join(p.name for p, _ in skipped)}")
        return path, skipped
    path = Path(args.resume_from_checkpoint)
    if not path.is_dir():
        raise ColorGANError(f"--resume_from_checkpoint {path}: no such checkpoint folder "
                            f"(give a checkpoint-N folder, or `latest` for the newest in --output_dir)")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ColorGANError(f"{path}: cannot resume from this checkpoint: {problem} "
                            f"(--resume_from_checkpoint latest falls back to the newest whole one)")
    return path, []


def resume_state(accelerator, path: Path | None, skipped: list[tuple[Path, str]] = ()) -> tuple[int, list[dict]]:
    """Load the checkpoint :func:`checkpoint_to_resume` chose (None: a new run); returns (step, history).

    The damaged checkpoints ``latest`` skipped are renamed ``checkpoint-N.damaged``, so that
    they neither count against ``--checkpoints_total_limit`` nor come up again.
    """
    if path is None:
        return 0, []
    accelerator.load_state(str(path))
    history = json.loads((path / HISTORY_FILE).read_text()) if (path / HISTORY_FILE).is_file() else []
    step = int(path.name[len(CHECKPOINT_PREFIX):])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for bad, _ in skipped:
            aside = bad.with_name(f"{bad.name}.damaged")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(bad, aside)
            logger.warning(f"moved the damaged {bad.name} aside to {aside}")
    logger.info(f"resumed from {path} at step {step}")
    return step, history


@torch.no_grad()
def validate(generator, test_loader: DataLoader, fixed_batch: dict, args: argparse.Namespace, accelerator, step: int,
             history: list[dict], output_dir: Path) -> None:
    """Test loss per batch and its weighted mean (logged), and a gray | predicted | true grid of the fixed batch."""
    per_batch, mean, pairs = evaluate_generator(generator, test_loader, args.pixel_loss, accelerator)
    accelerator.log({"test_pixel": mean}, step=step)
    history.append({"step": step, "test_pixel": mean, "test_pixel_per_batch": per_batch, "test_pairs": pairs})
    logger.info(f"step {step}: test {args.pixel_loss} per batch {[round(v, 5) for v in per_batch]}, weighted mean {mean:.5f}")
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(generator)
    model.eval()
    gen_input, _ = model.net.training_pair(fixed_batch)
    fake = model.net.to_rgb(gen_input[:8], model(gen_input[:8]))
    model.train()
    grid = save_grid(fixed_batch["gray"][:8], fake, fixed_batch["rgb"][:8], output_dir / SAMPLES_DIR / SAMPLE_NAME.format(step=step))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("samples", grid, step)


class RunLog:
    """The history of logged losses (saved with every checkpoint) and the per-epoch means (the paper's Table 1).

    An epoch cut by a checkpoint or a stop is logged as a part (a row with its ``epoch_steps``):
    the parts' sums live in the history that travels with each checkpoint, so a resumed run
    still gets the whole epoch's mean from :func:`epoch_means`. The means are over every
    process's samples (each process trains on its own share of the batch); the per-step
    rows are the main process's.
    """

    KEYS = ("g_pixel", "d_loss")

    def __init__(self, accelerator, history: list[dict], every: int, adversarial: bool) -> None:
        self.accelerator, self.history, self.every, self.adversarial = accelerator, history, every, adversarial
        self.sums: dict[str, float] = {}  # each loss times the samples of its step, summed
        self.count = 0  # steps
        self.samples = 0

    def step(self, step: int, logs: dict[str, float], last: bool, samples: int = 1) -> None:
        """Add a step whose losses are means over this process's ``samples``; log them every ``every`` steps."""
        for key in self.KEYS:
            self.sums[key] = self.sums.get(key, 0.0) + logs[key] * samples
        self.count += 1
        self.samples += samples
        if step % self.every == 0 or last:
            self.accelerator.log(logs, step=step)
            self.history.append({"step": step, **logs})

    def pooled_means(self) -> dict[str, float]:
        """The means of the losses since the last part, over the samples of every process (each process calls this)."""
        totals = [*(self.sums[key] for key in self.KEYS), self.samples]
        if self.accelerator.num_processes > 1:
            local = torch.tensor(totals, dtype=torch.float64, device=self.accelerator.device)
            totals = self.accelerator.reduce(local, reduction="sum").tolist()
        *sums, samples = totals
        return {key: value / samples for key, value in zip(self.KEYS, sums)}

    def end_epoch(self, epoch: int, step: int, pixel_loss_name: str, steps_per_epoch: int) -> None:
        """Log the steps made since the last part of this epoch; the epoch's mean when it is whole."""
        if not self.count:
            return
        self.history.append({"step": step, "epoch": epoch, "epoch_steps": self.count,
                             **{f"epoch_{key}": value for key, value in self.pooled_means().items()}})
        self.sums, self.count, self.samples = {}, 0, 0
        whole = epoch_means(self.history).get(epoch)
        if whole is None or whole["steps"] != steps_per_epoch:
            return
        self.accelerator.log({f"epoch_{key}": whole[key] for key in self.KEYS}, step=step)
        d_part = f", discriminator BCE {whole['d_loss']:.4f}" if self.adversarial else ""
        logger.info(f"epoch {epoch}: generator {pixel_loss_name} {whole['g_pixel']:.5f}{d_part}")


def epoch_means(history: list[dict]) -> dict[int, dict]:
    """Epoch (0-based) -> ``g_pixel``, ``d_loss`` (means over the steps logged for it), ``steps`` and the last ``step``.

    The parts of an epoch split by resumes are pooled, weighted by their steps. Rows written
    before ``epoch_steps`` was logged count the steps since the row before them (a resume
    starts at the step its checkpoint logged, and an epoch's first part follows the last
    part of the epoch before).
    """
    merged: dict[int, dict] = {}
    previous_step = 0
    for row in sorted((row for row in history if "epoch_g_pixel" in row), key=lambda row: row["step"]):
        entry = merged.setdefault(row["epoch"], {"g_pixel": 0.0, "d_loss": 0.0, "steps": 0, "step": None})
        steps = row.get("epoch_steps", row["step"] - previous_step)
        for key in ("g_pixel", "d_loss"):
            entry[key] += row.get(f"epoch_{key}", 0.0) * steps
        entry["steps"] += steps
        entry["step"] = previous_step = row["step"]
    for entry in merged.values():
        entry["g_pixel"] /= entry["steps"]
        entry["d_loss"] /= entry["steps"]
    return merged


def finish_run(accelerator, generator, discriminator, args: argparse.Namespace, history: list[dict], output_dir: Path) -> None:
    """Save the generator (and the discriminator, when it was trained), the history, the loss plot; push if asked.

    Each model is written whole or not at all (:func:`save_pretrained_atomic`); a failed
    save (a full disk) is a :class:`ColorGANError` that says how to finish from the final
    checkpoint, which the loop has written before.
    """
    if not accelerator.is_main_process:
        return
    gen = accelerator.unwrap_model(generator).eval()
    try:
        save_pretrained_atomic(gen, output_dir / "generator")
        if args.adv_weight:
            save_pretrained_atomic(accelerator.unwrap_model(discriminator), output_dir / "discriminator")
        write_atomic(output_dir / HISTORY_FILE, json.dumps(history, indent=1))
        if history:
            save_loss_plot(history, output_dir / LOSS_PLOT)
    except OSError as error:
        raise ColorGANError(f"{output_dir}: could not save the run's final outputs ({error}); the final checkpoint is complete: "
                            f"free some space and run the same command with --resume_from_checkpoint latest to save them") from None
    logger.info(f"saved the generator to {output_dir / 'generator'}")
    if args.push_to_hub:
        gen.push_to_hub(args.hub_model_id)


def save_pretrained_atomic(model, folder: Path) -> None:
    """``save_pretrained`` into a temporary folder beside ``folder``, flush it to disk, then swap it in.

    If the save fails (a full disk, an interrupt) the temporary folder is removed and
    ``folder`` is left as it was: never half-written.
    """
    tmp = folder.with_name(f".{folder.name}.tmp")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def _recover_interrupted_saves(output_dir: Path) -> None:
    """Clear what an interrupted save left behind: ``checkpoint-N.tmp`` folders, and a model folder
    caught between the two renames of :func:`save_pretrained_atomic` (its previous version is put back)."""
    for tmp in output_dir.glob(f"{CHECKPOINT_PREFIX}*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            logger.warning(f"removed {tmp}, a checkpoint save that never finished")
    for name in ("generator", "discriminator"):
        folder, tmp, old = output_dir / name, output_dir / f".{name}.tmp", output_dir / f".{name}.old"
        if old.is_dir() and not folder.exists():
            os.replace(old, folder)
            logger.warning(f"{folder}: put back the previous version (a save was interrupted)")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

#!/usr/bin/env python
"""Train a colorization GAN with Accelerate: the paper's recipe or ours.

    accelerate launch train/train.py --dataset_dir pairs/ --preset default --output_dir runs/default

One CPU, several GPUs or several nodes: the launcher decides, the script is the same.
Stop it at any time and resume with ``--resume_from_checkpoint latest``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import re
import shutil
import statistics
import sys
from itertools import islice
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from colorgan_hf.color import denormalize_ab, denormalize_l, lab_to_rgb, normalize_ab, normalize_l, rgb_to_lab
from colorgan_hf.data import PairTransform, build_pair_dataset, with_row_index
from colorgan_hf.errors import ColorGANError
from colorgan_hf.images import save_image_atomic, to_pil
from colorgan_hf.models import ColorDiscriminator, ColorGenerator, GANLoss
from colorgan_hf.registry import load_model
from colorgan_hf.rebalance import ChromaRebalancer, ab_histogram

logger = get_logger(__name__)

# Mix with the uniform distribution in the default preset's colour re-balancing (see below).
DEFAULT_PRESET_LAMBDA = 0.9
# Preset values fill every flag left unset on the command line.
PRESETS: dict[str, dict] = {
    # Section 3-4 of the paper: 120x120 RGB, its networks, Adam 5e-4, batch 64, MSE for the
    # generator, BCE with noisy 0/1 label matrices for the discriminator. The paper writes
    # "mean squared error was chosen for the generator loss" yet trains a GAN (its eq. 1):
    # we add the adversarial term with a small weight, 1e-3 (as SRGAN weighs it against a
    # pixel loss), so the generator error stays the MSE that Table 1 reports while the
    # discriminator still shapes it. --adv_weight 0 gives the pure-MSE reading.
    "paper": dict(architecture="paper", resolution=120, learning_rate=5e-4, adam_beta1=0.9, train_batch_size=64,
                  pixel_loss="mse", pixel_weight=1.0, adv_weight=1e-3, label_noise=0.1, rebalance_lambda=0.0,
                  gen_base_channels=32, disc_base_channels=32),
    # Ours: Lab, L -> ab, L1 (sharper than MSE, less drawn to the mean) weighted by colour
    # rarity. The re-balancing is milder than Zhang et al.'s 0.5: on photos/train, 0.5 pulls
    # the weighted mean colour +10 b* (sepia everywhere after 300 steps), 0.9 only +3.4.
    # The adversarial term is off: with it a CPU step costs 4.5x (bench/run.py), and the
    # shipped model was trained without it; --adv_weight 1 adds pix2pix's PatchGAN term.
    "default": dict(architecture="unet", resolution=128, learning_rate=5e-4, adam_beta1=0.9, train_batch_size=16,
                    pixel_loss="l1", pixel_weight=100.0, adv_weight=0.0, label_noise=0.0, rebalance_lambda=DEFAULT_PRESET_LAMBDA,
                    gen_base_channels=32, disc_base_channels=64),
}
CHECKPOINT_PREFIX = "checkpoint-"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_dir", type=str, default=None, help="A pair set saved by `colorgan build-dataset` (a DatasetDict with train/test).")
    data.add_argument("--train_data_dir", type=str, nargs="+", default=None, help="Image folders (or Hub dataset ids) to build the pair set from on the fly, instead of --dataset_dir.")
    data.add_argument("--max_train_samples", type=int, default=None, help="Use only the first N training pairs (for quick runs and tests).")
    data.add_argument("--max_eval_samples", type=int, default=256, help="Evaluate on at most this many test pairs.")
    data.add_argument("--balance_sources", type=float, nargs="?", const=0.0, default=None, metavar="POWER",
                      help="Re-weight the source folders (the Intel scenes are 78%% of photos/train): each source is drawn in "
                           "proportion to (its photo count)**POWER. Alone, POWER is 0: every source equally often; 0.5 tempers "
                           "the imbalance without repeating a 30-photo folder a quarter of the time; 1 is no re-weighting.")
    data.add_argument("--dataloader_num_workers", type=int, default=0, help="Data loading worker processes per training process.")

    recipe = parser.add_argument_group("recipe (unset flags take the preset's value)")
    recipe.add_argument("--preset", choices=sorted(PRESETS), default="default", help="`paper`: the paper's networks and losses as written. `default`: ours.")
    recipe.add_argument("--resolution", type=int, default=None, help="Training crop side (paper: 120, the whole squashed image; default: 128 random crops).")
    recipe.add_argument("--init_generator", type=str, default=None,
                        help="Start the generator from these weights instead of from scratch: a shipped name (default, paper), a "
                             "folder saved by save_pretrained, or a Hub id. Its architecture must match the preset's.")
    recipe.add_argument("--gen_base_channels", type=int, default=None, help="Generator width.")
    recipe.add_argument("--disc_base_channels", type=int, default=None, help="Discriminator width.")
    recipe.add_argument("--pixel_loss", choices=["l1", "mse"], default=None, help="Pixel loss of the generator (paper: mse, default: l1).")
    recipe.add_argument("--pixel_weight", type=float, default=None, help="Weight of the pixel loss (paper: 1, default: 100).")
    recipe.add_argument("--adv_weight", type=float, default=None, help="Weight of the adversarial term in the generator loss (paper: 1e-3, default: 0, i.e. off; pix2pix uses 1).")
    recipe.add_argument("--label_noise", type=float, default=None, help="Noise added to the discriminator's 0/1 label matrices (paper: 0.1, default: 0).")
    recipe.add_argument("--rebalance_lambda", type=float, default=None, help="Colour re-balancing of the pixel loss, Zhang et al. 2016: the weight of the uniform distribution in the mix (0 turns it off; default: 0.9; Zhang: 0.5).")
    recipe.add_argument("--rebalance_batches", type=int, default=20, help="Training batches whose ab histogram sets the re-balancing weights.")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--train_batch_size", type=int, default=None, help="Batch size per process (paper: 64, default: 16).")
    optim.add_argument("--num_epochs", type=int, default=100, help="Epochs to train (the paper trains about 1000).")
    optim.add_argument("--max_train_steps", type=int, default=None, help="Stop after this many steps; overrides --num_epochs.")
    optim.add_argument("--learning_rate", type=float, default=None, help="Adam learning rate of both networks (paper and default: 5e-4).")
    optim.add_argument("--adam_beta1", type=float, default=None, help="Adam beta1 (paper: Keras' 0.9; default: 0.9).")
    optim.add_argument("--adam_beta2", type=float, default=0.999, help="Adam beta2.")
    optim.add_argument("--lr_scheduler", choices=["constant", "cosine"], default="constant",
                       help="Learning-rate schedule of both networks: constant, or cosine decay to 0 at the last step.")
    optim.add_argument("--lr_warmup_steps", type=int, default=0, help="Linear warm-up steps before the schedule.")
    optim.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True,
                       help="Run the networks in channels_last memory format (faster convolutions: 11%% for the default preset on the bench CPU).")
    optim.add_argument("--seed", type=int, default=0, help="Seed of everything random.")
    optim.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None, help="Overrides `accelerate config`/`accelerate launch --mixed_precision`.")

    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", type=str, default="colorgan-run", help="Where checkpoints, samples, plots and the final models go.")
    out.add_argument("--checkpointing_steps", type=int, default=500, help="Save the full training state every N steps.")
    out.add_argument("--checkpoints_total_limit", type=int, default=3, help="Keep at most this many checkpoints (oldest removed).")
    out.add_argument("--resume_from_checkpoint", type=str, default=None, help="A checkpoint folder, or `latest` for the newest in --output_dir.")
    out.add_argument("--validation_steps", type=int, default=500, help="Every N steps: test loss and a gray/predicted/true grid.")
    out.add_argument("--logging_steps", type=int, default=10, help="Log the training losses every N steps.")
    out.add_argument("--report_to", type=str, default="tensorboard", help="Accelerate trackers: tensorboard, wandb, all, or none.")
    out.add_argument("--push_to_hub", action="store_true", help="Push the generator to the Hub at the end.")
    out.add_argument("--hub_model_id", type=str, default=None, help="Hub repository id for --push_to_hub.")
    args = parser.parse_args(argv)

    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if (args.dataset_dir is None) == (args.train_data_dir is None):
        parser.error("give exactly one of --dataset_dir and --train_data_dir")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    return args


def load_pairs(args: argparse.Namespace, accelerator: Accelerator):
    """The train/test DatasetDict, from disk or built from folders (by the main process first)."""
    import datasets

    if args.dataset_dir:
        try:
            pairs = datasets.load_from_disk(args.dataset_dir)
        except FileNotFoundError as error:
            raise ColorGANError(f"{args.dataset_dir}: not a saved pair set ({error})") from None
    else:
        mode = "square" if args.architecture == "paper" else "short_side"
        size = args.resolution if mode == "square" else 2 * args.resolution
        with accelerator.main_process_first():
            pairs, report = build_pair_dataset(args.train_data_dir, size=size, resize_mode=mode, seed=args.seed)
        logger.info(f"pair set: {json.dumps(report.as_dict())}")
    if len(pairs["train"]) == 0:
        raise ColorGANError("the training split has no usable images")
    if args.max_train_samples:
        pairs["train"] = pairs["train"].select(range(min(args.max_train_samples, len(pairs["train"]))))
    if args.max_eval_samples:
        pairs["test"] = pairs["test"].select(range(min(args.max_eval_samples, len(pairs["test"]))))
    return pairs


def source_sample_weights(sources: list[str], power: float) -> list[float]:
    """Per-photo sampling weights that draw each source in proportion to (its count)**power."""
    counts = {s: sources.count(s) for s in set(sources)}
    return [counts[s] ** power / counts[s] for s in sources]


def make_loaders(pairs, args: argparse.Namespace) -> tuple[DataLoader, DataLoader, PairTransform]:
    train_transform = PairTransform(args.resolution, train=True, seed=args.seed)
    train_set = with_row_index(pairs["train"]).with_transform(train_transform)
    test_set = pairs["test"].with_transform(PairTransform(args.resolution, train=False))

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        return {"rgb": torch.stack([r["rgb"] for r in rows]), "gray": torch.stack([r["gray"] for r in rows])}

    sampler = None
    if args.balance_sources is not None:
        sources = pairs["train"]["source"]
        weights = torch.tensor(source_sample_weights(sources, args.balance_sources), dtype=torch.double)
        sampler = WeightedRandomSampler(weights, num_samples=len(sources), replacement=True)
    train_loader = DataLoader(train_set, batch_size=args.train_batch_size, shuffle=sampler is None, sampler=sampler,
                              collate_fn=collate, num_workers=args.dataloader_num_workers, drop_last=len(train_set) > args.train_batch_size)
    test_loader = DataLoader(test_set, batch_size=args.train_batch_size, shuffle=False, collate_fn=collate,
                             num_workers=args.dataloader_num_workers)
    return train_loader, test_loader, train_transform


def to_network_space(batch: dict[str, torch.Tensor], architecture: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch -> (generator input, generator target) in the architecture's own space."""
    if architecture == "paper":
        return batch["gray"], batch["rgb"]  # (B, 1, S, S) gray and (B, 3, S, S) RGB, both in [0, 1]
    lab = rgb_to_lab(batch["rgb"].float())
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])  # (B, 1, S, S) and (B, 2, S, S) in [-1, 1]


def discriminator_input(gen_input: torch.Tensor, image: torch.Tensor, architecture: str) -> torch.Tensor:
    """The paper's discriminator judges the RGB image alone; the PatchGAN judges L and ab together."""
    return image if architecture == "paper" else torch.cat([gen_input, image], dim=1)


def to_rgb(gen_input: torch.Tensor, output: torch.Tensor, architecture: str) -> torch.Tensor:
    """Network output -> RGB in [0, 1] for pictures."""
    if architecture == "paper":
        return output.float().clamp(0, 1)
    return lab_to_rgb(torch.cat([denormalize_l(gen_input), denormalize_ab(output)], dim=1).float())


def training_ab_counts(loader: DataLoader, batches: int) -> torch.Tensor:
    """ab histogram (:func:`ab_histogram` bins) of the true colours of the first ``batches`` training batches."""
    counts = None
    for batch in islice(loader, batches):
        hist = ab_histogram(to_network_space(batch, "unet")[1])
        counts = hist if counts is None else counts + hist
    return counts


def estimate_rebalancer(loader: DataLoader, args: argparse.Namespace, accelerator: Accelerator) -> ChromaRebalancer | None:
    """Histogram the true ab of some training batches (summed over processes)."""
    if not args.rebalance_lambda:
        return None
    counts = training_ab_counts(loader, args.rebalance_batches)
    counts = accelerator.reduce(counts.to(accelerator.device), reduction="sum").cpu()
    return ChromaRebalancer(counts, lam=args.rebalance_lambda).to(accelerator.device)


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the base learning rate at an optimizer step: linear warm-up, then constant or cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def pixel_loss(output: torch.Tensor, target: torch.Tensor, kind: str, weights: torch.Tensor | None) -> torch.Tensor:
    error = (output.float() - target.float()).abs() if kind == "l1" else (output.float() - target.float()) ** 2
    return (error * weights).mean() if weights is not None else error.mean()


def save_grid(gray: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, path: Path) -> torch.Tensor:
    """Rows of gray | predicted | true, saved as PNG; returns the (3, H, W) grid."""
    rows = [torch.cat([g.expand(3, -1, -1), f, r], dim=2) for g, f, r in zip(gray, fake, real)]
    grid = torch.cat(rows, dim=1).clamp(0, 1).cpu()
    save_image_atomic(to_pil(grid), path)
    return grid


def save_loss_plot(history: list[dict], path: Path, smooth: int = 10) -> None:
    """Training losses (a running mean over ``smooth`` logged points) and the test loss; series that are all 0 are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("g_pixel", axes[0]), ("g_adv", axes[0]), ("d_loss", axes[1]), ("test_pixel", axes[0])):
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
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a ``.tmp`` folder is a save that never finished)."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


HISTORY_FILE = "history.json"


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, limit: int | None, history: list[dict]) -> Path:
    """save_state into a temporary folder, then rename: `latest` is never half-written.

    The logged history goes with the state, so a resumed run's curves start at step 0.
    """
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    tmp = output_dir / f"{CHECKPOINT_PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / HISTORY_FILE).write_text(json.dumps(history))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        if limit:
            for old in list_checkpoints(output_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    logger.info(f"saved {final}")
    return final


@torch.no_grad()
def evaluate_generator(generator, loader, args, accelerator) -> tuple[list[float], float]:
    """Pixel loss of the generator per test batch and their size-weighted mean (the paper's Table 2)."""
    generator.eval()
    per_batch, sizes = [], []
    for batch in loader:
        gen_input, target = to_network_space(batch, args.architecture)
        output = generator(gen_input)
        loss = pixel_loss(output, target, args.pixel_loss, None)
        gathered = accelerator.gather_for_metrics((loss.reshape(1), torch.tensor([len(target)], device=loss.device)))
        per_batch.extend(gathered[0].tolist())
        sizes.extend(gathered[1].tolist())
    generator.train()
    mean = sum(l * n for l, n in zip(per_batch, sizes)) / max(sum(sizes), 1)
    return per_batch, mean


def main(args: argparse.Namespace) -> dict:
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # The shuffle order of an epoch depends on (seed, epoch) alone, so a resumed run
        # skips into exactly the batches the interrupted one would have seen.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    pairs = load_pairs(args, accelerator)
    train_loader, test_loader, train_transform = make_loaders(pairs, args)
    # Only the paper's networks have a fixed input size; the U-Net and PatchGAN take any.
    fixed_size = {"image_size": args.resolution} if args.architecture == "paper" else {}
    if args.init_generator:
        generator = load_model(args.init_generator).train()
        if generator.architecture != args.architecture or generator.input_size not in (None, args.resolution):
            raise ColorGANError(f"{args.init_generator}: a {generator.architecture} generator (input size {generator.input_size}) "
                                f"cannot start a {args.preset} run at resolution {args.resolution}")
    else:
        generator = ColorGenerator(architecture=args.architecture, base_channels=args.gen_base_channels, **fixed_size)
    discriminator = ColorDiscriminator(architecture=args.architecture, base_channels=args.disc_base_channels, **fixed_size)
    if args.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    betas = (args.adam_beta1, args.adam_beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.learning_rate, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.learning_rate, betas=betas)
    generator, discriminator, opt_g, opt_d, train_loader, test_loader = accelerator.prepare(
        generator, discriminator, opt_g, opt_d, train_loader, test_loader
    )
    gan_loss = GANLoss(label_noise=args.label_noise)
    rebalancer = estimate_rebalancer(train_loader, args, accelerator) if args.architecture != "paper" else None

    steps_per_epoch = max(len(train_loader), 1)
    max_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    # The schedules count optimizer steps (global steps); registered, they are saved and
    # restored with the rest of the state.
    schedule = functools.partial(lr_factor, warmup=args.lr_warmup_steps, total=max_steps, kind=args.lr_scheduler)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, schedule)
    accelerator.register_for_checkpointing(sched_g, sched_d)
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    if accelerator.is_main_process:
        accelerator.init_trackers("colorgan", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    fixed_batch = next(iter(test_loader))
    global_step, first_epoch, resume_batches = 0, 0, 0
    history: list[dict] = []
    if args.resume_from_checkpoint:
        if args.resume_from_checkpoint == "latest":
            found = list_checkpoints(output_dir)
            path = found[-1] if found else None
        else:
            path = Path(args.resume_from_checkpoint)
        if path is None:
            logger.info(f"no checkpoint in {output_dir}: starting a new run")
        else:
            accelerator.load_state(str(path))
            global_step = int(path.name[len(CHECKPOINT_PREFIX):])
            first_epoch, resume_batches = divmod(global_step, steps_per_epoch)
            if (path / HISTORY_FILE).is_file():
                history = json.loads((path / HISTORY_FILE).read_text())
            logger.info(f"resumed from {path} at step {global_step}")

    logger.info(f"{len(pairs['train'])} training pairs, {steps_per_epoch} steps per epoch, {max_steps} steps, preset {args.preset}")
    progress = tqdm(total=max_steps, initial=global_step, desc="steps", disable=not accelerator.is_local_main_process)
    for epoch in range(first_epoch, num_epochs):
        train_transform.epoch = epoch
        generator.train()
        discriminator.train()
        loader = accelerator.skip_first_batches(train_loader, resume_batches) if resume_batches else train_loader
        resume_batches = 0
        epoch_sums = {"g_pixel": 0.0, "d_loss": 0.0, "n": 0}
        for batch in loader:
            if global_step >= max_steps:
                break
            gen_input, target = to_network_space(batch, args.architecture)
            fake = generator(gen_input)

            # Discriminator: real and fake in one forward, so DDP sees a single pass. With
            # --adv_weight 0 it cannot influence the generator, so it is not trained at all.
            d_loss = torch.zeros((), device=gen_input.device)
            if args.adv_weight:
                real_in = discriminator_input(gen_input, target, args.architecture)
                fake_in = discriminator_input(gen_input, fake.detach().to(target.dtype), args.architecture)
                real_logits, fake_logits = discriminator(torch.cat([real_in, fake_in])).chunk(2)
                d_loss = gan_loss(real_logits, True) + gan_loss(fake_logits, False)
                opt_d.zero_grad(set_to_none=True)
                accelerator.backward(d_loss)
                opt_d.step()
                sched_d.step()

            # Generator: pixel loss (re-balanced) plus the adversarial term. The D gradients
            # this backward leaves behind are cleared before D's next step; no_sync spares
            # their all-reduce.
            weights = rebalancer(target) if rebalancer is not None else None
            g_pixel = pixel_loss(fake, target, args.pixel_loss, weights)
            g_loss = args.pixel_weight * g_pixel
            g_adv = torch.zeros((), device=g_pixel.device)
            if args.adv_weight:
                with accelerator.no_sync(discriminator):
                    g_adv = gan_loss(discriminator(discriminator_input(gen_input, fake, args.architecture)), True)
            g_loss = g_loss + args.adv_weight * g_adv
            if not (torch.isfinite(g_loss) and torch.isfinite(d_loss)):
                raise ColorGANError(f"non-finite loss at step {global_step} (generator {g_loss.item()}, discriminator {d_loss.item()}): "
                                    f"stopping; the last good checkpoint in {output_dir} is intact")
            opt_g.zero_grad(set_to_none=True)
            accelerator.backward(g_loss)
            opt_g.step()
            sched_g.step()

            global_step += 1
            progress.update(1)
            logs = {"g_pixel": g_pixel.item(), "g_adv": g_adv.item(), "d_loss": d_loss.item(), "epoch": epoch,
                    "lr": sched_g.get_last_lr()[0]}
            epoch_sums["g_pixel"] += logs["g_pixel"]
            epoch_sums["d_loss"] += logs["d_loss"]
            epoch_sums["n"] += 1
            progress.set_postfix(g=f"{logs['g_pixel']:.4f}", d=f"{logs['d_loss']:.3f}")
            if global_step % args.logging_steps == 0 or global_step == max_steps:
                accelerator.log(logs, step=global_step)
                history.append({"step": global_step, **logs})
            if global_step % args.validation_steps == 0 or global_step == max_steps:
                per_batch, mean = evaluate_generator(generator, test_loader, args, accelerator)
                accelerator.log({"test_pixel": mean}, step=global_step)
                history.append({"step": global_step, "test_pixel": mean})
                logger.info(f"step {global_step}: test {args.pixel_loss} per batch {[round(v, 5) for v in per_batch]}, weighted mean {mean:.5f}")
                if accelerator.is_main_process:
                    with torch.no_grad():
                        g_in, tgt = to_network_space(fixed_batch, args.architecture)
                        out = accelerator.unwrap_model(generator).eval()(g_in[:8])
                        generator.train()
                        grid = save_grid(fixed_batch["gray"][:8], to_rgb(g_in[:8], out, args.architecture),
                                         fixed_batch["rgb"][:8], output_dir / "samples" / f"step-{global_step:07d}.png")
                    for tracker in accelerator.trackers:
                        if tracker.name == "tensorboard":
                            tracker.writer.add_image("samples", grid, global_step)
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, history)
        if epoch_sums["n"]:
            # The paper's Table 1: generator MSE and discriminator BCE per epoch.
            epoch_logs = {"epoch_g_pixel": epoch_sums["g_pixel"] / epoch_sums["n"], "epoch_d_loss": epoch_sums["d_loss"] / epoch_sums["n"]}
            accelerator.log(epoch_logs, step=global_step)
            logger.info(f"epoch {epoch}: generator {args.pixel_loss} {epoch_logs['epoch_g_pixel']:.5f}, discriminator BCE {epoch_logs['epoch_d_loss']:.4f}")
        if global_step >= max_steps:
            break
    progress.close()

    accelerator.wait_for_everyone()
    result = {"global_step": global_step, "output_dir": str(output_dir)}
    if accelerator.is_main_process:
        gen = accelerator.unwrap_model(generator).eval()
        disc = accelerator.unwrap_model(discriminator)
        gen.save_pretrained(output_dir / "generator")
        disc.save_pretrained(output_dir / "discriminator")
        (output_dir / HISTORY_FILE).write_text(json.dumps(history, indent=1))
        if history:
            save_loss_plot(history, output_dir / "loss_curves.png")
        logger.info(f"saved the generator to {output_dir / 'generator'}")
        if args.push_to_hub:
            gen.push_to_hub(args.hub_model_id)
    accelerator.end_training()
    return result


if __name__ == "__main__":
    try:
        main(parse_args())
    except ColorGANError as error:
        logging.getLogger(__name__).error(str(error))
        sys.exit(1)

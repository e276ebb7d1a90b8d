#!/usr/bin/env python
"""Train a colorization GAN with Accelerate: the paper's recipe or ours.

    accelerate launch train/train.py --train_data_dir my_photos/ --preset default --output_dir runs/default

One CPU, several GPUs or several nodes: the launcher decides, the script is the same.
Stop it at any time (Ctrl-C or SIGTERM save a checkpoint first, then exit with 130 or 143)
and resume with ``--resume_from_checkpoint latest``. Everything it trains is imported from
``colorgan_hf.training``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from colorgan_hf.errors import ColorGANError
from colorgan_hf.models import GENERATORS, GANLoss
from colorgan_hf.registry import shipped_models
from colorgan_hf.training import (LOGS_DIR, PRESETS, RUN_OUTPUTS, TRACKER_PROJECT, DeviceBatches, LossWeights, NonFiniteLossError,
                                  PerceptualLoss, RunLog, StopRequest, build_networks, checkpoint_to_resume, claim_output_dir,
                                  epoch_batches, estimate_rebalancer, finish_run, list_checkpoints, load_pairs, lr_factor, make_loaders,
                                  resolution_problem, resume_state, save_checkpoint, train_step, validate)

logger = logging.getLogger("colorgan_hf.train")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and each flag's default after its help; unset flags (None: the preset's value,
    which the help gives) and switches that are off by default say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS or not action.option_strings:
            return action.help
        shown = " ".join(map(str, default)) if isinstance(default, list) else ("on" if default is True else default)
        return f"{action.help} (default: {str(shown).replace('%', '%%')})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
    data.add_argument("--preload_data", action="store_true",
                      help="Decode the training split once into the device's memory and crop, flip and batch it there (for GPUs, "
                           "where a small network outruns the loader; each image is kept as its central square).")

    recipe = parser.add_argument_group("recipe (unset flags take the preset's value)")
    recipe.add_argument("--preset", choices=sorted(PRESETS), default="default", help="`paper`: the paper's networks and losses as written. `default`: ours.")
    recipe.add_argument("--resolution", type=int, default=None, help="Training crop side (paper: 120, the whole squashed image; default: 128 random crops).")
    recipe.add_argument("--init_generator", type=str, default=None,
                        help=f"Start the generator from these weights instead of from scratch: a shipped name "
                             f"({', '.join(shipped_models())}), a folder saved by save_pretrained, or a Hub id. Every weight whose name and shape match is taken, so a "
                             "`unet` generator can start the trunk of a `unet_bins` one; the architecture and width are the "
                             "weights' own (a --gen_base_channels or --architecture they override gets a warning).")
    recipe.add_argument("--init_encoder", type=str, default=None,
                        help="For `unet_semantic` and `semantic_bins`: the safetensors file of their frozen MobileNetV2 encoder, written by "
                             "train/import_encoder.py (needed unless --init_generator is a generator that has one already).")
    recipe.add_argument("--gen_base_channels", type=int, default=None, help="Generator width (both presets: 32).")
    recipe.add_argument("--disc_base_channels", type=int, default=None, help="Discriminator width (both presets: 32).")
    recipe.add_argument("--pixel_loss", choices=["l1", "mse"], default=None, help="Pixel loss of the generator (paper: mse, default: l1), on the decoded colours.")
    recipe.add_argument("--pixel_weight", type=float, default=None, help="Weight of the pixel loss (paper: 1, default: 100; 10 beside the cross-entropy of unet_bins).")
    recipe.add_argument("--class_weight", type=float, default=None, help="Weight of the architecture's own loss: the cross-entropy over a*b* bins of `unet_bins` and `semantic_bins` (default: 0; use 1 with them).")
    recipe.add_argument("--adv_weight", type=float, default=None, help="Weight of the adversarial term in the generator loss (paper: 1e-3, default: 0.5; 0 turns the discriminator off for a NoGAN pretraining, pix2pix uses 1).")
    recipe.add_argument("--label_noise", type=float, default=None, help="Noise added to the discriminator's 0/1 label matrices (paper: 0.1, default: 0).")
    recipe.add_argument("--rebalance_lambda", type=float, default=None, help="Colour re-balancing of the pixel loss, Zhang et al. 2016: the weight of the uniform distribution in the mix (0 turns it off; default: 0.95; Zhang: 0.5).")
    recipe.add_argument("--target_saturation", type=float, default=None,
                        help="Multiply the chroma of the true a*b* taught to the generator (and shown to the discriminator as real) "
                             "by this, hue kept (DDColor: 1.2; both presets: 1, off). a*b* generators only.")
    recipe.add_argument("--colourfulness_weight", type=float, default=None,
                        help="Weight of the per-image shortfall of mean chroma against the truth's (both presets: 0, off). "
                             "a*b* generators only.")
    recipe.add_argument("--perceptual_weight", type=float, default=None,
                        help="Weight of the perceptual loss: the L1 distance between a frozen ImageNet MobileNetV2's features "
                             "of the output and of the truth, relative to the truth's (DeOldify's feature loss; both presets: "
                             "0, off). Needs --perceptual_encoder.")
    recipe.add_argument("--perceptual_encoder", type=str, default=None,
                        help="The safetensors file of the perceptual loss's RGB MobileNetV2, written by "
                             "`train/import_encoder.py --rgb`.")
    recipe.add_argument("--perceptual_blocks", type=int, nargs="+", default=list(PerceptualLoss.BLOCKS),
                        help="Which MobileNetV2 blocks (0-16, Keras's block numbers; 0 is expanded_conv) the perceptual loss "
                             "compares (by default the last block at strides 4 and 8 and one at 16); blocks 0-10 hold Keras's "
                             "ImageNet weights, 11-16 were tuned by nsfwjs's authors.")
    recipe.add_argument("--architecture", choices=sorted(GENERATORS), default=None, help="Generator architecture (paper: paper, default: unet, the Lab U-Net regressing a*b*; unet_bins: the same trunk classifying a*b* into bins; unet_semantic: the U-Net reading a frozen ImageNet encoder's features, see --init_encoder; semantic_bins: unet_semantic with the bins head of unet_bins).")
    recipe.add_argument("--rebalance_batches", type=int, default=20, help="Training batches whose ab histogram sets the re-balancing weights.")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--train_batch_size", type=int, default=None, help="Batch size per process (paper: 64, default: 16).")
    optim.add_argument("--num_epochs", type=int, default=100, help="Epochs to train (the paper trains about 1000).")
    optim.add_argument("--max_train_steps", type=int, default=None, help="Stop after this many steps; overrides --num_epochs.")
    optim.add_argument("--learning_rate", type=float, default=None, help="Adam learning rate of both networks (paper: 5e-4, default: 2e-4).")
    optim.add_argument("--adam_beta1", type=float, default=None, help="Adam beta1 (paper: Keras' 0.9; default: pix2pix's 0.5).")
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
    out.add_argument("--overwrite_output_dir", action="store_true",
                     help="Start a new run in a folder that holds an earlier one: everything a run writes there is removed first "
                          f"(checkpoints, {', '.join(RUN_OUTPUTS)}); other files in it are left alone.")
    out.add_argument("--resume_from_checkpoint", type=str, default=None, help="A checkpoint folder, or `latest` for the newest in --output_dir.")
    out.add_argument("--validation_steps", type=int, default=500, help="Every N steps: test loss and a gray/predicted/true grid.")
    out.add_argument("--logging_steps", type=int, default=10, help="Log the training losses every N steps.")
    out.add_argument("--report_to", type=str, default="tensorboard", help="Accelerate trackers: tensorboard, wandb, all, or none.")
    out.add_argument("--push_to_hub", action="store_true", help="Push the generator to the Hub at the end.")
    out.add_argument("--hub_model_id", type=str, default=None, help="Hub repository id for --push_to_hub.")
    args = parser.parse_args(argv)

    # Which flags took the preset's value (so that a warning can name only those given on the command line).
    args.preset_values = sorted(key for key in PRESETS[args.preset] if getattr(args, key, None) is None)
    for key in args.preset_values:
        setattr(args, key, PRESETS[args.preset][key])
    if (args.dataset_dir is None) == (args.train_data_dir is None):
        parser.error("give exactly one of --dataset_dir and --train_data_dir")
    # Counts: zero or negative ones divided by zero, trained nothing, or deleted every checkpoint.
    for flag in ("num_epochs", "max_train_steps", "checkpointing_steps", "validation_steps", "logging_steps", "train_batch_size",
                 "resolution", "rebalance_batches", "checkpoints_total_limit", "max_train_samples", "max_eval_samples",
                 "gen_base_channels", "disc_base_channels"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be at least 1, got {value}")
    for flag in ("lr_warmup_steps", "dataloader_num_workers", "seed"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be >= 0, got {getattr(args, flag)}")
    # Reals: NaN fails every comparison, so each value must be shown inside its range, not merely not outside it.
    ranges = {"learning_rate": ("(", 0.0, math.inf, ")"), "adam_beta1": ("[", 0.0, 1.0, ")"), "adam_beta2": ("[", 0.0, 1.0, ")"),
              "pixel_weight": ("[", 0.0, math.inf, ")"), "class_weight": ("[", 0.0, math.inf, ")"),
              "adv_weight": ("[", 0.0, math.inf, ")"), "label_noise": ("[", 0.0, 0.5, ")"),
              "target_saturation": ("(", 0.0, 4.0, "]"), "colourfulness_weight": ("[", 0.0, math.inf, ")"),
              "perceptual_weight": ("[", 0.0, math.inf, ")"),
              "rebalance_lambda": ("[", 0.0, 1.0, "]"), "balance_sources": ("[", 0.0, math.inf, ")")}
    for flag, (left, low, high, right) in ranges.items():
        value = getattr(args, flag)
        if value is None:
            continue
        inside = (value >= low if left == "[" else value > low) and (value <= high if right == "]" else value < high)
        if not (inside and math.isfinite(value)):
            parser.error(f"--{flag} must be in {left}{low:g}, {high:g}{right}, got {value}")
    if args.preload_data and args.balance_sources is not None:
        parser.error("--preload_data draws every photo once per epoch: it cannot be combined with --balance_sources")
    if bool(args.perceptual_weight) != bool(args.perceptual_encoder):
        parser.error("--perceptual_weight and --perceptual_encoder go together: the loss needs the encoder, "
                     "and the encoder is only for the loss")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    if not args.init_generator:  # the starting weights bring their own stride: checked once they are loaded
        problem = resolution_problem(args.resolution, args.architecture, GENERATORS[args.architecture]().stride, bool(args.adv_weight))
        if problem:
            parser.error(problem)
    return args



def main(args: argparse.Namespace) -> dict:
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / LOGS_DIR)),
        # The shuffle order of an epoch depends on (seed, epoch) alone, so a resumed run
        # skips into exactly the batches the interrupted one would have seen.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    if not accelerator.is_main_process:
        # The other processes repeat the main one's progress lines; their warnings and errors are their own.
        logging.getLogger().setLevel(max(logging.getLogger().getEffectiveLevel(), logging.WARNING))
    set_seed(args.seed)
    with claim_output_dir(output_dir, args, accelerator):
        return train(accelerator, args, output_dir)


def train(accelerator: Accelerator, args: argparse.Namespace, output_dir: Path) -> dict:
    """The training loop: data, networks, one prepare, then train_step until max steps or a stop signal."""
    resume_from = checkpoint_to_resume(args, output_dir)
    pairs = load_pairs(args, accelerator.main_process_first)
    train_loader, test_loader, train_transform = make_loaders(pairs, args.resolution, args.train_batch_size, args.seed,
                                                             args.balance_sources, args.dataloader_num_workers)
    if args.preload_data:
        train_loader = train_transform = DeviceBatches(pairs["train"], args.resolution, args.train_batch_size, args.seed,
                                                       accelerator.device, accelerator.process_index, accelerator.num_processes)
    # Fixed input sizes: let cuDNN pick its fastest kernels once.
    torch.backends.cudnn.benchmark = True
    generator, discriminator = build_networks(args)
    if args.channels_last:
        generator, discriminator = (net.to(memory_format=torch.channels_last) for net in (generator, discriminator))
    betas = (args.adam_beta1, args.adam_beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.learning_rate, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.learning_rate, betas=betas)
    generator, discriminator, opt_g, opt_d, train_loader, test_loader = accelerator.prepare(
        generator, discriminator, opt_g, opt_d, train_loader, test_loader
    )
    steps_per_epoch = max(len(train_loader), 1)
    max_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    # The schedules count optimizer steps; registered, they are saved and restored with the state.
    # Without the adversarial term the discriminator's optimizer never steps, so it has no schedule.
    schedule = functools.partial(lr_factor, warmup=args.lr_warmup_steps, total=max_steps, kind=args.lr_scheduler)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, schedule) for opt in ((opt_g, opt_d) if args.adv_weight else (opt_g,))]
    accelerator.register_for_checkpointing(*schedulers)
    losses, gan_loss = LossWeights.from_args(args), GANLoss(label_noise=args.label_noise)
    # Frozen and the same in every process: not prepared (DDP has nothing of it to synchronise).
    perceptual = None
    if args.perceptual_weight:
        perceptual = PerceptualLoss(args.perceptual_encoder, tuple(args.perceptual_blocks)).to(accelerator.device)
    rebalancer = estimate_rebalancer(train_loader, args, accelerator)
    if accelerator.is_main_process:
        accelerator.init_trackers(TRACKER_PROJECT, config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})
    global_step, history = resume_state(accelerator, *resume_from)
    first_epoch, skip = divmod(global_step, steps_per_epoch)
    fixed_batch = next(iter(test_loader))
    run_log = RunLog(accelerator, history, args.logging_steps, adversarial=bool(args.adv_weight))
    logger.info(f"{len(pairs['train'])} training pairs, {steps_per_epoch} steps per epoch, {max_steps} steps, preset {args.preset}")
    progress = tqdm(total=max_steps, initial=global_step, desc="steps", disable=not accelerator.is_local_main_process)
    with StopRequest() as stop:
        for epoch in range(first_epoch, math.ceil(max_steps / steps_per_epoch)):
            train_transform.epoch = epoch
            for batch in epoch_batches(train_loader, epoch, skip if epoch == first_epoch else 0, accelerator):
                if global_step >= max_steps or stop.requested:
                    break
                try:
                    logs = train_step(batch, generator, discriminator, opt_g, opt_d, losses, gan_loss, rebalancer, accelerator, perceptual)
                except NonFiniteLossError as error:
                    raise ColorGANError(f"non-finite loss at step {global_step} ({error}): stopping; the last good checkpoint "
                                        f"in {output_dir} is intact") from None
                for scheduler in schedulers:
                    scheduler.step()
                global_step += 1
                progress.update(1)
                logs = {key: value.item() for key, value in logs.items()} | {"epoch": epoch, "lr": schedulers[0].get_last_lr()[0]}
                progress.set_postfix({"g": f"{logs['g_total']:.4f}", **({"d": f"{logs['d_loss']:.3f}"} if args.adv_weight else {})})
                run_log.step(global_step, logs, last=global_step == max_steps, samples=len(batch["rgb"]))
                if global_step % args.validation_steps == 0 or global_step == max_steps:
                    validate(generator, test_loader, fixed_batch, args, accelerator, global_step, history, output_dir)
                # A checkpoint that falls on an epoch's last step waits for that epoch's means (Table 1).
                if global_step % args.checkpointing_steps == 0 and global_step % steps_per_epoch:
                    run_log.end_epoch(epoch, global_step, args.pixel_loss, steps_per_epoch)
                    save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, history)
            run_log.end_epoch(epoch, global_step, args.pixel_loss, steps_per_epoch)
            if global_step % args.checkpointing_steps == 0 and not global_step % steps_per_epoch:
                save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, history)
            if global_step >= max_steps or stop.requested:
                break
    progress.close()
    if not list_checkpoints(output_dir) or list_checkpoints(output_dir)[-1].name != f"checkpoint-{global_step}":
        save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit, history)
    accelerator.wait_for_everyone()
    if not stop.requested:
        finish_run(accelerator, generator, discriminator, args, history, output_dir)
    elif accelerator.is_main_process:
        logger.warning(f"stopped at step {global_step} of {max_steps}; resume with --resume_from_checkpoint latest")
    accelerator.end_training()
    return {"global_step": global_step, "output_dir": str(output_dir), "stopped": stop.requested, "signal": stop.signal}


def cli(argv: list[str] | None = None) -> int:
    """The script: train, and return its exit status. A stopped run is not a finished one: 128 + the signal's
    number (130 for Ctrl-C, 143 for SIGTERM, as a shell reports it), so that `train.py && colorgan push` stops there."""
    args = parse_args(argv)
    try:
        result = main(args)
    except ColorGANError as error:
        logger.error(str(error))
        return 1
    except KeyboardInterrupt:  # before the loop's handler is in place, or after it (the final save)
        logger.error("interrupted; resume with --resume_from_checkpoint latest (from the newest complete checkpoint, if any)")
        return 130
    return 128 + result["signal"] if result["stopped"] else 0


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # 11 INFO lines per checkpoint otherwise
    sys.exit(cli())

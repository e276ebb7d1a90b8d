"""Parameter counts, FLOPs and forward time of the generators, and what each discriminator
costs beside its generator per training image.

    python bench/model_stats.py [--size 256] [--train-size 128] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from colorgan_hf import ColorDiscriminator, ColorGenerator
from colorgan_hf.models import GENERATORS


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def measure(model: ColorGenerator, side: int, repeats: int) -> dict:
    x = torch.rand(1, 1, side, side)
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    times.sort()
    return {"input": f"{side}x{side}", "gflops": forward_flops(model, x) / 1e9, "median_ms": 1000 * times[len(times) // 2],
            "min_ms": 1000 * times[0]}


def training_costs(side: int) -> list[dict]:
    """Forward GFLOPs per training image of each generator and discriminator at ``side``.

    A GAN step runs the discriminator three times per image (real, fake, and the
    generator's adversarial term) and the generator once, each forward plus a backward of
    about twice its cost, so the ratio of the discriminator's share to the generator's is
    3 x its forward FLOPs / the generator's.
    """
    rows = []
    pairs = [("unet_bins", "patchgan", 64), ("unet_bins", "patchgan", 32), ("unet", "patchgan", 64), ("paper", "paper", 32)]
    for gen_arch, disc_arch, disc_width in pairs:
        fixed = GENERATORS[gen_arch].size_options(side)
        gen = ColorGenerator(architecture=gen_arch, **fixed)
        disc = ColorDiscriminator(architecture=disc_arch, base_channels=disc_width, **fixed)
        g = forward_flops(gen, torch.rand(1, 1, side, side)) / 1e9
        d = forward_flops(disc, torch.rand(1, 3, side, side)) / 1e9
        rows.append({"generator": gen_arch, "discriminator": f"{disc_arch} base {disc_width}", "input": f"{side}x{side}",
                     "g_gflops": g, "d_gflops": d, "d_share": 3 * d / g})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="Square input side for the forward timing.")
    parser.add_argument("--train-size", type=int, default=128, help="Square crop side for the training-cost comparison.")
    parser.add_argument("--repeats", type=int, default=10, help="Timed forward passes (after 2 warm-ups).")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
    args = parser.parse_args()
    rows = []
    for arch in ("semantic_bins_pair", "unet_pair", "unet_semantic", "semantic_bins", "unet_bins", "unet", "paper"):
        model = ColorGenerator(architecture=arch).eval()
        params = sum(p.numel() for p in model.parameters())  # unet_semantic, semantic_bins: the frozen encoder included
        sides = [args.size] if model.input_size is None else [args.size, model.input_size]
        for side in sides:
            rows.append({"architecture": arch, "params": params, **measure(model, side, args.repeats)})
    costs = training_costs(args.train_size)
    if args.json:
        print(json.dumps({"generators": rows, "training": costs}, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'architecture':<15}{'params':>12}{'input':>10}{'GFLOPs':>9}{'median ms':>11}{'min ms':>9}")
    for r in rows:
        print(f"{r['architecture']:<15}{r['params']:>12,}{r['input']:>10}{r['gflops']:>9.2f}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}")
    print("\nper training image (forward GFLOPs); D share = 3 x D / G, the discriminator's part of a GAN step beside the generator's")
    print(f"{'generator':<11}{'discriminator':<18}{'input':>9}{'G GFLOPs':>10}{'D GFLOPs':>10}{'D share':>9}")
    for r in costs:
        print(f"{r['generator']:<11}{r['discriminator']:<18}{r['input']:>9}{r['g_gflops']:>10.2f}{r['d_gflops']:>10.2f}{r['d_share']:>8.1f}x")


if __name__ == "__main__":
    main()

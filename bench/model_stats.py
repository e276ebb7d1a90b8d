"""Parameter counts, FLOPs and forward time of both generators on this machine.

    python bench/model_stats.py [--size 256] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from colorgan_hf import ColorGenerator


def measure(model: ColorGenerator, side: int, repeats: int) -> dict:
    x = torch.rand(1, 1, side, side)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    times.sort()
    return {"input": f"{side}x{side}", "gflops": counter.get_total_flops() / 1e9, "median_ms": 1000 * times[len(times) // 2], "min_ms": 1000 * times[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="Square input side for the forward timing.")
    parser.add_argument("--repeats", type=int, default=10, help="Timed forward passes (after 2 warm-ups).")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    args = parser.parse_args()
    rows = []
    for arch in ("unet", "paper"):
        model = ColorGenerator(architecture=arch).eval()
        params = sum(p.numel() for p in model.parameters())
        sides = [args.size] if arch == "unet" else [args.size, model.input_size]
        for side in sides:
            rows.append({"architecture": arch, "params": params, **measure(model, side, args.repeats)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'architecture':<13}{'params':>12}{'input':>10}{'GFLOPs':>9}{'median ms':>11}{'min ms':>9}")
    for r in rows:
        print(f"{r['architecture']:<13}{r['params']:>12,}{r['input']:>10}{r['gflops']:>9.2f}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}")


if __name__ == "__main__":
    main()

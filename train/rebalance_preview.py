#!/usr/bin/env python
"""What colour re-balancing does to a pair set, before training with it.

    python train/rebalance_preview.py --dataset_dir pairs/train256 --balance_sources --lambdas 0.5 0.9

For each lambda it prints the mean a*, b* and chroma of the training colours as the
re-balanced L1 loss weighs them: a weighted mean far from the plain one is a colour cast
the loss will pull the model towards (the weighted median, for L1).
"""

from __future__ import annotations

import argparse
import logging

import datasets
import torch

from colorgan_hf.rebalance import BIN_SIZE, NUM_BINS, ChromaRebalancer
from colorgan_hf.training import PRESETS, make_loaders, training_ab_counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", required=True, help="A pair set saved by `colorgan build-dataset`.")
    parser.add_argument("--balance_sources", type=float, nargs="?", const=0.0, default=None, metavar="POWER",
                        help="Sample the sources as train.py would with the same flag.")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95],
                        help="Re-balancing mixes (train.py's --rebalance_lambda) to compare.")
    parser.add_argument("--batches", type=int, default=20, help="Training batches to histogram (as train.py's --rebalance_batches).")
    parser.add_argument("--batch_size", type=int, default=32, help="Batch size of those batches.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the crops and the sampler.")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(args.seed)  # the source sampler draws from the global generator
    loader, _, _ = make_loaders(datasets.load_from_disk(args.dataset_dir), PRESETS["default"]["resolution"], args.batch_size,
                                args.seed, args.balance_sources)
    counts = training_ab_counts(loader, args.batches)
    centers = (torch.arange(NUM_BINS) + 0.5) * BIN_SIZE - NUM_BINS * BIN_SIZE / 2  # bin centres in Lab units
    a, b = (c.flatten() for c in torch.meshgrid(centers, centers, indexing="ij"))
    chroma = (a**2 + b**2).sqrt()

    def summary(p: torch.Tensor, name: str) -> dict:
        return {"weighting": name, "mean_a": float((p * a).sum()), "mean_b": float((p * b).sum()), "mean_chroma": float((p * chroma).sum())}

    prob = counts / counts.sum()
    rows = [summary(prob, "none")]
    for lam in args.lambdas:
        weighted = prob * ChromaRebalancer(counts, lam).weights
        rows.append(summary(weighted / weighted.sum(), f"lambda {lam}"))
    print(f"{'weighting':<12} {'mean a*':>8} {'mean b*':>8} {'chroma':>7}")
    for row in rows:
        print(f"{row['weighting']:<12} {row['mean_a']:>+8.2f} {row['mean_b']:>+8.2f} {row['mean_chroma']:>7.2f}")
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(parse_args())

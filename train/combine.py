#!/usr/bin/env python
"""Join two trained U-Net generators into one pair generator whose a*b* is their mix.

    python train/combine.py FIRST SECOND --mix 0.65 --output_dir runs/pair/generator

FIRST is a `unet`, `unet_semantic` or `semantic_bins` generator (the pair is then a
`unet_pair`, a `semantic_pair` or a `semantic_bins_pair`), SECOND a `unet` one (a shipped name, a folder saved by save_pretrained or
a Hub id), of the same depth, any widths. The result predicts ``(1 - mix) * FIRST + mix * SECOND``
and is saved with save_pretrained (safetensors and config.json), written to a temporary folder
and renamed, so an interrupted run leaves nothing half-written. Choose ``--mix`` on held-out
training photos (`colorgan evaluate --data ...`), never on the eval photos.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from colorgan_hf.errors import ColorGANError
from colorgan_hf.models import ColorGenerator
from colorgan_hf.registry import load_model
from colorgan_hf.training import save_pretrained_atomic

logger = logging.getLogger("colorgan_hf.combine")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", help="The first generator (unet, unet_semantic or semantic_bins): a shipped name, a save_pretrained folder or a Hub id.")
    parser.add_argument("second", help="The second U-Net generator (same depth as the first, any width).")
    parser.add_argument("--mix", type=float, default=0.65, help="The second generator's share of the a*b* average, in [0, 1].")
    parser.add_argument("--half", action="store_true",
                        help="Store the weights in float16: half the file (they load back as float32; colours within one "
                             "8-bit level of the float32 file's).")
    parser.add_argument("--output_dir", required=True, help="Folder to save the joined generator in (replaced whole if it exists).")
    args = parser.parse_args(argv)
    if not 0.0 <= args.mix <= 1.0:
        parser.error(f"--mix must be in [0, 1], got {args.mix}")
    return args


# The pair architecture for each kind of first member; the second is always a plain U-Net.
PAIR_FOR_FIRST = {"unet": "unet_pair", "unet_semantic": "semantic_pair", "semantic_bins": "semantic_bins_pair"}


def combine(first: ColorGenerator, second: ColorGenerator, mix: float) -> ColorGenerator:
    """A pair generator holding copies of ``first`` (see :data:`PAIR_FOR_FIRST`) and ``second`` (``unet``), same depth."""
    if first.architecture not in PAIR_FOR_FIRST:
        raise ColorGANError(f"the first generator is a {first.architecture!r} one: only {', '.join(map(repr, PAIR_FOR_FIRST))} "
                            "generators can be joined")
    if second.architecture != "unet":
        raise ColorGANError(f"the second generator is a {second.architecture!r} one: only 'unet' generators can be joined")
    if first.net.depth != second.net.depth:
        raise ColorGANError(f"the generators have depths {first.net.depth} and {second.net.depth}: they must be the same")
    # The first's own options (widths, depth; bins and vividness for semantic_bins) are the pair's.
    pair = ColorGenerator(architecture=PAIR_FOR_FIRST[first.architecture], **first.net.config(),
                          second_base_channels=second.net.base_channels, mix=mix)
    pair.net.first.load_state_dict(first.net.state_dict())
    pair.net.second.load_state_dict(second.net.state_dict())
    return pair.eval()


def main(args: argparse.Namespace) -> None:
    pair = combine(load_model(args.first), load_model(args.second), args.mix)
    save_pretrained_atomic(pair.half() if args.half else pair, Path(args.output_dir))
    logger.info(f"saved the {args.first} + {args.second} pair (mix {args.mix}) to {args.output_dir}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        main(parse_args())
    except ColorGANError as error:
        logger.error(str(error))
        sys.exit(1)

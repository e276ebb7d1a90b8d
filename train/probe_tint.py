#!/usr/bin/env python
"""What `colorgan build-dataset --tint-spread` drops: genuine photos against tinted prints.

    python train/probe_tint.py ../shared/data/photos/train [--prints 300] [--spreads 0.5 0.75 1 1.25 1.5]

A tinted print (sepia, cyanotype, a colour cast over a black-and-white photo) would teach one
hue for everything, so build-dataset drops a photo whose colours spread less than
``--tint-spread`` across their main hue line (:func:`colorgan_hf.data.colour_spread`). A
photo of one real colour (snow, fog, sea) sits near that line too. This probe measures both
sides of the threshold on a folder of colour photos:

- every photo of the folder as it is (taken to be genuine colour photos): the share each
  spread drops as tinted;
- ``--prints`` of them made into tinted prints (gray, then one of a few print tones, shrunk
  to a short side of 100-500 px and saved as JPEG at quality 50-95, all drawn with ``--seed``):
  the share each spread catches, as gray or tinted.
"""

from __future__ import annotations

import argparse
import io
import logging
import random

from PIL import Image, ImageOps
from tqdm.auto import tqdm

from colorgan_hf.data import GRAY_CHROMA, TINT_MINOR_SPREAD, colour_spread, list_images, resize_image
from colorgan_hf.errors import ImageLoadError
from colorgan_hf.images import load_image, to_pil

# (shadow, highlight) of the print tones: sepia, a darker sepia, cyanotype, a red-brown and a selenium-olive toning.
PRINT_TONES = (("#2b1d0e", "#f5e6c8"), ("#1a1410", "#e8d7b0"), ("#0d1b2a", "#cfe3f0"), ("#201010", "#f0d8d0"),
               ("#15140a", "#e0e0c0"))
PRINT_SIDES = (100, 150, 200, 300, 500)
PRINT_QUALITIES = (50, 65, 75, 85, 95)
logger = logging.getLogger("probe_tint")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="A folder of colour photos (searched recursively).")
    parser.add_argument("--prints", type=int, default=300, help="How many of them to make into tinted prints (default 300).")
    parser.add_argument("--spreads", type=float, nargs="+", default=[0.5, 0.75, TINT_MINOR_SPREAD, 1.25, 1.5],
                        help=f"The --tint-spread values to measure, in Lab units (default 0.5 0.75 {TINT_MINOR_SPREAD} 1.25 1.5).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draw of photos, tones, sizes and qualities (default 0).")
    return parser.parse_args(argv)


def tinted_print(photo: Image.Image, rng: random.Random) -> Image.Image:
    """``photo`` as a tinted print: its gray in one print tone, shrunk and saved as JPEG (decoded back)."""
    shadow, highlight = rng.choice(PRINT_TONES)
    tinted = ImageOps.colorize(photo.convert("L"), shadow, highlight)
    tinted = resize_image(tinted, rng.choice(PRINT_SIDES), "short_side")
    buffer = io.BytesIO()
    tinted.save(buffer, format="JPEG", quality=rng.choice(PRINT_QUALITIES))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def measure(photo: Image.Image) -> tuple[bool, float]:
    """(counts as grayscale, spread) as build-dataset's rule sees the photo."""
    chroma, spread = colour_spread(photo)
    return chroma < GRAY_CHROMA, spread


def main(args: argparse.Namespace) -> dict[str, dict[float, float]]:
    """Print, and return, {"genuine dropped": {spread: share}, "prints caught": {spread: share}}."""
    if args.prints < 1:
        raise SystemExit(f"--prints must be at least 1, got {args.prints}")
    paths, _ = list_images(args.folder)
    rng = random.Random(args.seed)
    chosen = set(rng.sample(range(len(paths)), min(args.prints, len(paths))))
    genuine, prints = [], []
    for index, path in enumerate(tqdm(paths, desc="Measuring", unit="img")):
        try:
            photo = to_pil(load_image(path).rgb)
        except ImageLoadError as error:
            logger.warning("%s", error)
            continue
        genuine.append(measure(photo))
        if index in chosen:
            prints.append(measure(tinted_print(photo, rng)))
    if not genuine:
        raise SystemExit(f"{args.folder}: no readable photos")
    gray_share = sum(gray for gray, _ in genuine) / len(genuine)
    result = {
        "genuine dropped": {s: sum(not gray and spread < s for gray, spread in genuine) / len(genuine) for s in args.spreads},
        "prints caught": {s: sum(gray or spread < s for gray, spread in prints) / len(prints) for s in args.spreads},
    }
    print(f"{args.folder}: {len(genuine)} photos as they are ({gray_share:.1%} dropped as grayscale at any spread), "
          f"{len(prints)} made into tinted prints (seed {args.seed})")
    print(f"{'--tint-spread':>13}  {'photos dropped as tinted':>24}  {'tinted prints caught':>20}")
    for s in args.spreads:
        print(f"{s:>13g}  {result['genuine dropped'][s]:>24.1%}  {result['prints caught'][s]:>20.1%}")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main(parse_args())

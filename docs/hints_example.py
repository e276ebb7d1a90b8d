"""Write docs/hints_example.jpg: one BSDS500 test photo colorized without and with two colour strokes.

    python docs/hints_example.py [--data ../shared/data/photos/eval/bsds500_test]

Panels, left to right: the gray input with the two strokes drawn on it, the automatic
result, the result with the strokes, the original. Each stroke's colour is the true mean
colour under it (what someone who remembers the van and the trees would pick).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from colorgan_hf import colorize, load_default
from colorgan_hf.evaluation import gray_baseline
from colorgan_hf.hints import footprints, parse_hints
from colorgan_hf.images import load_image
from colorgan_hf.metrics.modules import to_array

ROOT = Path(__file__).resolve().parents[1]
PHOTO = "102062.jpg"
# (points, width) of the two strokes, in pixels of the 481x321 photo: the van's side, the trees.
STROKES = [([[48, 178], [95, 186], [140, 182]], 8), ([[225, 45], [320, 85], [420, 60]], 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "photos" / "eval" / "bsds500_test"))
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "hints_example.jpg"))
    args = parser.parse_args()
    original = to_array(load_image(Path(args.data) / PHOTO).rgb)
    gray = to_array(gray_baseline(torch.from_numpy(original).permute(2, 0, 1).float() / 255.0))
    height, width = gray.shape[:2]
    hints = []
    for points, stroke_width in STROKES:
        (mask,) = footprints(parse_hints([{"points": points, "width": stroke_width, "color": "black"}]), (height, width), (height, width))
        color = [int(round(c)) for c in original[mask.numpy()].mean(0)]
        hints.append({"points": points, "width": stroke_width, "color": color})
    model = load_default()
    automatic = colorize(gray, model)
    hinted = colorize(gray, model, hints=hints)
    drawn = Image.fromarray(gray)
    draw = ImageDraw.Draw(drawn)
    for hint in hints:
        draw.line([tuple(p) for p in hint["points"]], fill=tuple(hint["color"]), width=hint["width"], joint="curve")
    panels = [drawn, automatic, hinted, Image.fromarray(original)]
    sheet = Image.new("RGB", (width * len(panels), height), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * width, 0))
    sheet.save(args.output, quality=90)
    print(f"wrote {args.output}; hints: {json.dumps(hints)}")


if __name__ == "__main__":
    main()

"""The ``colorgan`` command: colorize photos and build pair sets from the shell.

    colorgan colorize old_photos/ -o colorized/
    colorgan build-dataset photos/train -o pairs/
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .errors import ColorGANError
from .images import find_images, save_image_atomic
from .pipeline import DEFAULT_SIZE

logger = logging.getLogger("colorgan")
OUTPUT_SUFFIX = "_color"
# Extensions written as they came; anything else (GIF, BMP, ...) is written as PNG.
KEEP_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def _collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, path relative to what the user named) for each input; folders are recursed."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for file in find_images(path):
                found.append((file, file.relative_to(path)))
        else:
            found.append((path, Path(path.name)))
    return found


def _output_path(relative: Path, out_dir: Path, fmt: str | None) -> Path:
    suffix = f".{fmt.lower().lstrip('.')}" if fmt else (relative.suffix.lower() if relative.suffix.lower() in KEEP_FORMATS else ".png")
    return out_dir / relative.parent / f"{relative.stem}{OUTPUT_SUFFIX}{suffix}"


def cmd_colorize(args: argparse.Namespace) -> int:
    from .pipeline import colorize
    from .registry import load_model

    jobs = _collect_inputs(args.inputs)
    if not jobs:
        logger.error("no images found in %s", ", ".join(args.inputs))
        return 1
    try:
        model = load_model(args.model)
    except (ColorGANError, OSError, ValueError) as error:
        logger.error("cannot load model %s: %s", args.model or "default", error)
        return 1
    input_files = {file.resolve() for file, _ in jobs}
    out_dir = Path(args.output_dir)
    failed = 0
    for file, relative in tqdm(jobs, desc="Colorizing", unit="img", disable=args.quiet or len(jobs) < 2):
        target = _output_path(relative, out_dir, args.format)
        try:
            if target.resolve() in input_files:
                raise ColorGANError(f"{file}: output {target} would overwrite an input; choose another -o")
            if target.exists() and not args.overwrite:
                raise ColorGANError(f"{file}: output {target} exists (pass --overwrite to replace it)")
            result = colorize(file, model, size=args.size, saturation=args.saturation)
            save_image_atomic(result, target)
        except (ColorGANError, OSError) as error:
            failed += 1
            tqdm.write(f"colorgan: error: {error}", file=sys.stderr)
    done = len(jobs) - failed
    tqdm.write(f"colorized {done} of {len(jobs)} image(s) into {out_dir}" + (f"; {failed} failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from .data import build_pair_dataset

    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        logger.error("%s exists and is not empty (pass --overwrite to replace it)", out)
        return 1
    pairs, report = build_pair_dataset(
        args.sources, size=args.size, resize_mode=args.resize_mode, min_size=args.min_size,
        test_fraction=args.test_fraction, seed=args.seed, image_column=args.image_column, num_proc=args.num_proc,
    )
    pairs.save_to_disk(str(out))
    (out / "build_report.json").write_text(json.dumps(report.as_dict(), indent=2))
    print(json.dumps(report.as_dict(), indent=2))
    if args.push_to_hub:
        pairs.push_to_hub(args.push_to_hub)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_models, format_table, save_json

    models = args.model or [None]
    result = evaluate_models(models, args.data, size=args.size, limit=args.limit, progress=not args.quiet,
                             saturation=args.saturation)
    if args.output:
        save_json(result, args.output)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _read_evaluations(paths: list[str] | None) -> list[dict]:
    from .card import read_evaluations

    return read_evaluations(paths)


def cmd_card(args: argparse.Namespace) -> int:
    from .card import write_card

    out = write_card(
        args.output, model=args.model, eval_json=args.eval_json or [], training_file=args.training,
        limitations_file=args.limitations, samples=args.sample or [], sample_rule=args.sample_rule, grid_data=args.grid_data,
        grid_compare=args.grid_compare or [], grid_count=args.grid_count, repo_id=args.repo_id, title=args.title,
        summary=args.summary, datasets=args.dataset or [],
    )
    tqdm.write(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .push import push_model

    training = Path(args.training).read_text() if args.training else "Not recorded."
    url = push_model(args.model, args.repo_id, evaluations=_read_evaluations(args.eval_json), training=training, private=args.private)
    print(url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorgan", description="Colorize black-and-white photographs with a GAN.")
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress bars.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("colorize", help="Colorize photos or folders of photos.",
                       description="Colorize photos; folders are searched recursively. Each output is INPUT_color.EXT under -o, "
                                   "mirroring the folder layout. A bad file is reported in one line and the rest go on; "
                                   "the exit status is 1 if any failed.")
    p.add_argument("inputs", nargs="+", help="Image files and/or folders.")
    p.add_argument("-o", "--output-dir", required=True, help="Folder for the colorized images (created if missing).")
    p.add_argument("--model", default=None, help="Shipped name (default, paper), local folder or Hub id. Default: the shipped default model.")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"Short side of the working resolution the network runs at (default {DEFAULT_SIZE}).")
    p.add_argument("--saturation", type=float, default=1.0, help="Multiply the predicted chroma (default 1.0; 0 gives gray).")
    p.add_argument("--format", default=None, help="Output format extension (png, jpg, webp); default: the input's, or png.")
    p.add_argument("--overwrite", action="store_true", help="Replace existing outputs (inputs are never overwritten).")
    p.set_defaults(func=cmd_colorize)

    e = sub.add_parser("evaluate", help="Score models on colour photos beside the no-colour baseline.",
                       description="Turn each colour photo gray, colorize it at full resolution through the same pipeline users "
                                   "get, and score it with the shipped `evaluate` metrics (PSNR, SSIM, CIEDE2000, colourfulness and "
                                   "its ratio to the truth, mean a*/b* shift, ab AuC, the paper's MSE). A `gray` row (chroma removed) "
                                   "is the baseline.")
    e.add_argument("--model", action="append", default=None, help="Shipped name, folder or Hub id; repeat for several rows. Default: the shipped default.")
    e.add_argument("--data", required=True, help="A folder of colour photos (recursive), a pair set saved by build-dataset (its test split), or a Hub dataset id.")
    e.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"Working resolution (short side) of the pipeline (default {DEFAULT_SIZE}).")
    e.add_argument("--limit", type=int, default=None, help="Score only the first N photos.")
    e.add_argument("--saturation", type=float, default=1.0,
                   help="Multiply every model's predicted chroma by this, as `colorize --saturation` does (default 1.0): "
                        "measures the trade between colourfulness and colour error.")
    e.add_argument("--json", action="store_true", help="Print the result as JSON instead of a table.")
    e.add_argument("--output", default=None, help="Also write the JSON result to this file.")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("card", help="Write a model card with measured results.",
                       description="Render the model card of a generator (Hub YAML with a model-index of the numbers in "
                                   "`colorgan evaluate --output` files, usage, training, results tables, samples, limitations).")
    c.add_argument("--model", default=None, help="Shipped name, folder or Hub id (default: the shipped default).")
    c.add_argument("--eval-json", action="append", help="A `colorgan evaluate --output` file; repeat for several data sets.")
    c.add_argument("--training", default=None, help="A text/markdown file describing how the model was trained.")
    c.add_argument("--limitations", default=None, help="A markdown file with extra limitations.")
    c.add_argument("--sample", action="append", help="Path (relative to the card) of a sample image; repeatable.")
    c.add_argument("--sample-rule", default="", help="How the sample photos were chosen.")
    c.add_argument("--grid-data", default=None, help="A folder of colour photos: write a gray / colorized / original grid of every k-th one beside the card.")
    c.add_argument("--grid-compare", action="append", metavar="MODEL",
                   help="Another generator (name or path) whose colorization gets a column of the grid before this model's; repeatable.")
    c.add_argument("--grid-count", type=int, default=12, help="Photos in the sample grid (default 12).")
    c.add_argument("--repo-id", default="colorgan-hf/colorgan-default", help="Hub id shown in the usage snippet.")
    c.add_argument("--title", default=None, help="Card title.")
    c.add_argument("--summary", default="", help="One paragraph under the title.")
    c.add_argument("--dataset", action="append", help="Dataset id for the metadata; repeatable.")
    c.add_argument("-o", "--output", default="model_card.md", help="Where to write the card (default model_card.md).")
    c.set_defaults(func=cmd_card)

    h = sub.add_parser("push", help="Push a generator, its discriminator config, a card and samples to the Hub in one commit.")
    h.add_argument("--model", required=True, help="A training output folder (generator/, discriminator/, samples/) or a generator folder.")
    h.add_argument("--repo-id", required=True, help="Hub repository id, e.g. you/colorgan-default.")
    h.add_argument("--eval-json", action="append", help="`colorgan evaluate --output` files whose numbers go into the card.")
    h.add_argument("--training", default=None, help="A text/markdown file describing how the model was trained.")
    h.add_argument("--private", action="store_true", help="Create the repository as private.")
    h.set_defaults(func=cmd_push)

    b = sub.add_parser("build-dataset", help="Build a gray/colour pair set with `datasets`.",
                       description="Read image folders (recursively) or Hub datasets, drop grayscale, tinted, too small and "
                                   "unreadable images (counted), resize, pair each colour image with its gray version, split "
                                   "train/test with a seed, and save_to_disk.")
    b.add_argument("sources", nargs="+", help="Image folders and/or Hub dataset ids.")
    b.add_argument("-o", "--output-dir", required=True, help="Where to save the DatasetDict.")
    b.add_argument("--size", type=int, default=256, help="Square side (--resize-mode square) or short side (default 256).")
    b.add_argument("--resize-mode", choices=["short_side", "square"], default="short_side", help="square: the paper's 120x120 squash; short_side: keep aspect for random crops.")
    b.add_argument("--min-size", type=int, default=64, help="Drop photos whose short side is below this (default 64).")
    b.add_argument("--test-fraction", type=float, default=0.1, help="Share held out as the test split (default 0.1, as the paper).")
    b.add_argument("--seed", type=int, default=0, help="Seed of the split shuffle.")
    b.add_argument("--image-column", default="image", help="Image column of Hub datasets.")
    b.add_argument("--num-proc", type=int, default=None, help="Worker processes for decoding.")
    b.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="Also push the pair set to this Hub dataset repo.")
    b.add_argument("--overwrite", action="store_true", help="Replace a non-empty output folder.")
    b.set_defaults(func=cmd_build_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="colorgan: %(levelname)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        # Checked once for every command that takes it, before any model or photo is loaded.
        if getattr(args, "saturation", 0.0) < 0:
            raise ColorGANError(f"--saturation must be >= 0, got {args.saturation}")
        return args.func(args)
    except ColorGANError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``colorgan`` command: colorize photos and build pair sets from the shell.

    colorgan colorize old_photos/ -o colorized/
    colorgan build-dataset photos/train -o pairs/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from .batch import DEFAULT_BATCH_SIZE, launched_rank, resolve_device
from .data import TINT_MINOR_SPREAD
from .errors import ColorGANError, OptionError
from .extras import missing_extra
from .files import check_output_file, check_output_folder, check_writable_folder, real_path, write_atomic
from .images import WRITABLE_FORMATS, find_images, max_pixels_setting
from .models import vividness_architectures
from .pipeline import DEFAULT_SIZE, MAX_SIZE, check_options, warn_if_vividness_ignored
from .registry import run_generator
from .video import DEFAULT_STABILITY as VIDEO_STABILITY
from .video import DEFAULT_VIDEO_SIZE as VIDEO_SIZE

DEFAULT_WORKERS = 2
# From this many photos on, a CPU with bfloat16 arithmetic gets a hint that --bf16 would be faster.
BF16_HINT_PHOTOS = 100
BF16_HELP = ("Run the network in bfloat16 (CPUs with AVX-512 BF16 or AMX, recent GPUs): about twice as fast on such a CPU, "
             "colours within a just-noticeable difference of float32's and as far from the truth (README, Archive scale). Default: float32.")

# Which models --vividness reaches, for the help of every command that takes it.
VIVIDNESS_MODELS = (f"the classification architectures ({', '.join(vividness_architectures())}), which predict a distribution "
                    "of colours; the others (the shipped default among them) ignore it")

logger = logging.getLogger("colorgan")
OUTPUT_SUFFIX = "_color"
# Extensions written as they came; anything else (GIF, BMP, ...) is written as PNG.
KEEP_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
# A temporary file of an interrupted write (files.atomic_path: ".NAME.RANDOM.tmp") older than
# this is a leftover (a kill -9, a power cut): a later run into the same folder removes it.
STALE_TMP_S = 600


def _collect_inputs(inputs: list[str], out_dir: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(file, path relative to what the user named) for each input, and how many images were left
    out because they lie in the output folder: folders are recursed, and the output folder (when
    it lies inside one) is never read as input. A file named twice (or reached through two
    named folders) is colorized once."""
    out_real = real_path(out_dir)
    found: list[tuple[Path, Path]] = []
    seen: set[tuple[Path, Path]] = set()
    inside_output = 0
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pairs = []
            for file in find_images(path):
                if real_path(file).is_relative_to(out_real):
                    inside_output += 1
                    continue
                pairs.append((file, file.relative_to(path)))
        else:
            pairs = [(path, Path(path.name))]
        for file, relative in pairs:
            # The same file under the same output name is one job; under another name it is the user's choice.
            key = (real_path(file), relative)
            if key not in seen:
                seen.add(key)
                found.append((file, relative))
    return found, inside_output


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, inputs that cannot mean what they say."""
    if any(not item for item in args.inputs):
        # "" is the current folder to pathlib: an unset "$DIR" would colorize everything below it.
        raise OptionError("an input is an empty path (an unset shell variable?); name the photos or folders")
    if getattr(args, "hints", None):
        from .video import is_video_path

        videos = [item for item in args.inputs if is_video_path(Path(item)) and not Path(item).is_dir()]
        if videos:
            raise OptionError(f"--hints: colour hints are for one photo, and {videos[0]} is a video")


def _warn_renamed_outputs(jobs: list[tuple[Path, Path]], targets: list[Path], out_dir: Path, fmt: str | None) -> None:
    """With --skip-existing, an output of an earlier run under the plain name NAME_color.EXT is not
    a match for a photo whose output is now NAME_EXT_color.EXT (a photo of the same name but another
    format was added beside it): say so, once, rather than let the earlier file go stale unnoticed."""
    for (source, relative), target in zip(jobs, targets):
        plain = _plain_output(relative, out_dir, fmt)
        if target != plain and plain.exists() and not target.exists():
            logger.warning("%s exists from an earlier run, but %s now shares that name with another input of the same "
                           "name, so its output is %s (and the others' are named likewise); remove %s if it is stale",
                           plain, source, target.name, plain.name)
            return


def _output_suffix(relative: Path, fmt: str | None) -> str:
    if fmt:
        return f".{fmt}"
    return relative.suffix.lower() if relative.suffix.lower() in KEEP_FORMATS else ".png"


def _plain_output(relative: Path, out_dir: Path, fmt: str | None) -> Path:
    """NAME_color.EXT under ``out_dir``: an input's output name unless another input shares it."""
    return out_dir / relative.parent / f"{relative.stem}{OUTPUT_SUFFIX}{_output_suffix(relative, fmt)}"


def _output_paths(jobs: list[tuple[Path, Path]], out_dir: Path, fmt: str | None) -> list[Path]:
    """One output per input, never shared: NAME_color.EXT, or, where several inputs would get
    the same name (a.jpg a.JPG a.png a.gif a.bmp), NAME_EXT_color.EXT (and a number if still
    needed). Names are compared without case, as on a case-insensitive disk."""
    plain = [_plain_output(relative, out_dir, fmt) for _, relative in jobs]
    counts: dict[str, int] = {}
    for path in plain:
        counts[str(path).lower()] = counts.get(str(path).lower(), 0) + 1
    taken = {str(path).lower() for path in plain if counts[str(path).lower()] == 1}
    targets = []
    for (_, relative), path in zip(jobs, plain):
        if counts[str(path).lower()] == 1:
            targets.append(path)
            continue
        base = f"{relative.stem}_{relative.suffix.lstrip('.') or 'noext'}"
        candidate, n = path.with_name(f"{base}{OUTPUT_SUFFIX}{path.suffix}"), 1
        while str(candidate).lower() in taken:
            n += 1
            candidate = path.with_name(f"{base}-{n}{OUTPUT_SUFFIX}{path.suffix}")
        taken.add(str(candidate).lower())
        targets.append(candidate)
    return targets


def _remove_stale_tmp(target: Path) -> None:
    """Remove temporary files that an interrupted earlier write of ``target`` left behind."""
    if not target.parent.is_dir():
        return
    cutoff = time.time() - STALE_TMP_S
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                leftover.unlink()


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM and SIGHUP stop the run as Ctrl-C does: the file being written is removed
    (files.atomic_path), never left as a .tmp."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them be
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _check_colorize_args(args: argparse.Namespace) -> None:
    if not 1 <= args.size <= MAX_SIZE:
        raise ColorGANError(f"--size must be between 16 and {MAX_SIZE} (the working resolution's short side), got {args.size}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise ColorGANError(f"--quality must be between 1 and 100, got {args.quality}")
    if (args.batch_size is not None and args.batch_size < 1) or args.workers < 0 or (args.threads is not None and args.threads < 1):
        raise ColorGANError(f"--batch-size and --threads must be at least 1 and --workers at least 0, got "
                            f"{args.batch_size}, {args.threads} and {args.workers}")
    if getattr(args, "photos_at_once", None) is not None and args.photos_at_once < 1:
        raise ColorGANError(f"--photos-at-once must be at least 1, got {args.photos_at_once}")
    if args.format is not None:
        fmt = args.format.lower().lstrip(".")
        if fmt not in WRITABLE_FORMATS:
            raise ColorGANError(f"--format must be one of {', '.join(sorted(WRITABLE_FORMATS))}, got {args.format!r}")
        args.format = fmt
    if args.device:
        resolve_device(args.device)
    max_pixels_setting()  # a bad COLORGAN_MAX_PIXELS is said once, here, not once for every photo
    check_output_folder(args.output_dir, "-o")


def _load_hints(args: argparse.Namespace, inputs: int) -> list | None:
    """The hints of ``--hints FILE`` (README, "Colour hints"), read and checked before any model loads."""
    if not getattr(args, "hints", None):
        return None
    from .hints import load_hints_file

    if inputs != 1:
        raise ColorGANError(f"--hints: hints are in pixels of one photo; give one input photo, not {inputs}")
    return load_hints_file(args.hints)


def cmd_colorize(args: argparse.Namespace) -> int:
    from .pipeline import _generator

    _check_colorize_args(args)
    _check_inputs(args)
    out_dir = Path(args.output_dir)
    if not getattr(args, "videos_done", False):  # videos go to colorgan_hf.video; photos go on below
        from .video import run_cli, split_video_inputs

        videos, photos = split_video_inputs(args.inputs, out_dir)
        if videos:
            if args.auto_contrast:
                logger.warning("--auto-contrast applies to photos: videos are colorized with their own tones "
                               "(a stretch measured frame by frame would flicker)")
            status = run_cli(args, videos)
            args.inputs, args.videos_done = photos, True
            return max(status, cmd_colorize(args)) if photos else status
    jobs, inside_output = _collect_inputs(args.inputs, out_dir)
    if not jobs:
        if inside_output:
            # `-o .` has no name of its own: the suggestion is built from the folder it is.
            suggestion = real_path(out_dir)
            suggestion = suggestion.with_name(f"{suggestion.name}{OUTPUT_SUFFIX}") if suggestion.name else Path("colorized")
            logger.error("no images to colorize in %s: its %d image(s) lie in the output folder %s, which is never read as "
                         "input (so that outputs are not colorized again); write to another folder, e.g. -o %s",
                         ", ".join(args.inputs), inside_output, out_dir, suggestion)
        else:
            logger.error("no images found in %s", ", ".join(args.inputs))
        return 1
    args.hint_list = _load_hints(args, len(jobs))
    targets = _output_paths(jobs, out_dir, args.format)  # the same on every process: from the full sorted list
    # A finished run re-checked with --skip-existing writes nothing: a read-only archive of it is fine.
    if not (args.skip_existing and all(target.exists() for target in targets)):
        check_writable_folder(out_dir, "-o")
    try:
        model = _generator(run_generator(args.model))  # an .onnx file runs with onnxruntime
    except (ColorGANError, OSError, ValueError) as error:
        logger.error("cannot load model %s: %s", args.model or "default", error)
        return 1
    warn_if_vividness_ignored(model, args.vividness, args.model)
    stride = getattr(model, "stride", 1)
    if getattr(model, "input_size", None) is None and args.size < stride:
        raise ColorGANError(f"--size must be at least the model's stride {stride} (and at most {MAX_SIZE}), got {args.size}")
    input_files = {real_path(file) for file, _ in jobs}
    if args.skip_existing and launched_rank() == 0:  # said once, by the main process of a launch
        _warn_renamed_outputs(jobs, targets, out_dir, args.format)
    return _colorize_jobs(args, model, [(file, target) for (file, _), target in zip(jobs, targets)], input_files, out_dir)


def _colorize_jobs(args: argparse.Namespace, model, jobs: list[tuple[Path, Path]], input_files: set[Path], out_dir: Path) -> int:
    """Colorize ``jobs`` ((input, output) pairs) in this process's share (all of them unless launched as
    several processes with ``accelerate launch``); the main process prints the combined summary, and
    every process returns the combined status (batch.py has the engine)."""
    import torch

    from .batch import (ColorizeSettings, Processes, ShareResult, check_plan, colorize_share, default_batch_size, default_threads,
                        native_bf16_cpu, place_generator, plan_jobs, set_threads, thread_plan)

    processes = Processes(args.device)
    threads = args.threads or (default_threads(processes.local_world) if processes.local_world > 1 else torch.get_num_threads())
    batch_size = args.batch_size or default_batch_size(processes.device)
    model = place_generator(model, processes.device)
    if (processes.is_main and not args.bf16 and processes.device.type == "cpu" and isinstance(model, torch.nn.Module)
            and len(jobs) >= BF16_HINT_PHOTOS and native_bf16_cpu()):
        logger.info("this CPU does bfloat16 arithmetic itself: --bf16 runs the network about twice as fast here, "
                    "colours within a just-noticeable difference of float32's (README, Archive scale)")
    settings = ColorizeSettings(size=args.size, saturation=args.saturation, vividness=args.vividness,
                                auto_contrast=args.auto_contrast, quality=args.quality, skip_existing=args.skip_existing,
                                overwrite=args.overwrite, bf16=args.bf16,
                                colorize_kwargs={"hints": args.hint_list} if getattr(args, "hint_list", None) else {})

    def report(message: str) -> None:
        tqdm.write(f"colorgan: error: {message}", file=sys.stderr)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"colorgan: warning: {message}", file=sys.stderr)

    # Every message goes above the progress bar, never through it.
    with logging_redirect_tqdm(), warnings.catch_warnings(), _stop_on_signals():
        warnings.showwarning = show_warning
        # The main process decides what is left to do; every process gets the same plan and takes every N-th job.
        plan = processes.broadcast(plan_jobs(jobs, settings, input_files, _remove_stale_tmp) if processes.is_main else None)
        check_plan(plan, jobs)
        if processes.is_main:
            for _, message in plan.failures:
                report(message)
        mine = [jobs[i] for i in plan.pending[processes.rank :: processes.world]]
        # The main process shows its own share (the others' are as long, give or take one).
        bar = tqdm(total=len(mine), desc="Colorizing", unit="img", disable=args.quiet or len(jobs) < 2 or not processes.is_main)
        # --workers 0 asks for one photo after another in one thread.
        asked = args.photos_at_once if args.photos_at_once is not None or args.workers else 1
        photos_at_once, threads_each = thread_plan(processes.device, batch_size, len(mine), threads, asked)
        set_threads(model, threads_each)
        share = colorize_share(mine, model, settings, device=processes.device, batch_size=batch_size, workers=args.workers,
                               photos_at_once=photos_at_once, before_write=_remove_stale_tmp, on_error=report, on_progress=bar.update)
    bar.close()
    combined = ShareResult(skipped=plan.skipped, failures=list(plan.failures))
    shares = processes.gather(share)
    for other in shares:
        combined.add(other)
    if processes.is_main:
        failed, skipped = len(combined.failures), combined.skipped
        summary = f"colorized {combined.done} of {len(jobs)} image(s) into {out_dir}"
        if skipped:
            summary += f"; {skipped} skipped (already there)"
        if failed:
            summary += f"; {failed} failed"
        if processes.world > 1:
            summary += f" ({processes.world} processes: {' + '.join(str(other.done) for other in shares)} colorized)"
            # Each process said its own failures as they came; here they are together.
            summary += "".join(f"\n  failed: {message}" for _, message in combined.failures)
        tqdm.write(summary, file=sys.stderr)
    processes.barrier()
    processes.close()
    return 1 if combined.failures else 0


def cmd_colorize_dataset(args: argparse.Namespace) -> int:
    from .dataset_colorize import run_from_cli

    return run_from_cli(args)


def cmd_suggest_hints(args: argparse.Namespace) -> int:
    from .hints import mark_spots, read_hints_file
    from .images import load_image, save_image_atomic, to_pil
    from .pipeline import _generator, suggest_hints

    _check_suggest_outputs(args)
    model = _generator(run_generator(args.model))
    stride = getattr(model, "stride", 1)
    if getattr(model, "input_size", None) is None and not stride <= args.size <= MAX_SIZE:
        raise ColorGANError(f"--size must be between the model's stride {stride} and {MAX_SIZE}, got {args.size}")
    known, written = read_hints_file(args.hints) if args.hints else (None, [])
    loaded = load_image(args.photo)  # read once: for the spots and for the marked copy
    spots = suggest_hints(loaded, model, args.count, size=args.size, auto_contrast=args.auto_contrast, hints=known)
    print("spot\tx\ty")
    for number, (x, y) in enumerate(spots, start=1):
        print(f"{number}\t{x}\t{y}")
    if args.output:
        # A hints file for `colorgan colorize --hints`: the hints already given, as they were, then
        # each new spot with its colour left for the person to fill in.
        entries = (_carried_hints(written, Path(args.hints), Path(args.output)) if args.hints else []) + [
            {"x": x, "y": y, "color": None} for x, y in spots]
        _write_output(args.output, "-o", lambda path: write_atomic(
            path, "[\n" + ",\n".join(f"  {json.dumps(entry)}" for entry in entries) + "\n]\n"))
        tqdm.write(f"wrote {args.output}: give each new spot (colour null) the colour you know (\"#rrggbb\"), remove the "
                   f"others, then colorgan colorize {args.photo} -o OUT --hints {args.output}", file=sys.stderr)
    if args.marked:
        marked = mark_spots(to_pil(loaded.rgb), spots)
        _write_output(args.marked, "--marked", lambda path: save_image_atomic(marked, path))
        tqdm.write(f"wrote {args.marked}: the photo with the spots ringed and numbered", file=sys.stderr)
    return 0


def _check_suggest_outputs(args: argparse.Namespace) -> None:
    """suggest-hints never writes over the photo, the hints it read (but -o may update that hints
    file: the given hints are carried into it) or a file of the user's, unless --overwrite."""
    photo = Path(args.photo)
    protected = {photo: "the input photo"}
    if args.output:
        check_output_file(args.output, "-o", protected=protected, overwrite=args.overwrite,
                          replaceable=Path(args.hints) if args.hints else None)
    if args.marked:
        if args.hints:
            protected[Path(args.hints)] = "the hints file given with --hints"
        if args.output:
            protected[Path(args.output)] = "the hints file of -o"
        check_output_file(args.marked, "--marked", protected=protected, overwrite=args.overwrite)


def _carried_hints(entries: list, hints_file: Path, output: Path) -> list:
    """The ``entries`` of ``hints_file`` as they were, for a new hints file at ``output``: a mask file
    named relative to the old file's folder is named relative to the new one's."""
    carried = []
    for entry in entries:
        mask = entry.get("mask") if isinstance(entry, dict) else None
        if isinstance(mask, str) and not Path(mask).is_absolute():
            entry = {**entry, "mask": os.path.relpath(hints_file.parent / mask, output.parent)}
        carried.append(entry)
    return carried


def _write_output(path: str, option: str, write) -> None:
    """Run ``write(path)``; a file system refusal (a full disk, a read-only folder) is one line naming the file."""
    try:
        write(path)
    except OSError as error:
        raise ColorGANError(f"{option} {path}: cannot be written ({error.strerror or error})") from None


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from .onnx import export_onnx

    if args.vividness is not None and not 0.0 <= args.vividness <= 1.0:
        raise ColorGANError(f"--vividness must be in [0, 1], got {args.vividness}")
    path = export_onnx(run_generator(args.model), args.output, vividness=args.vividness)
    tqdm.write(f"wrote {path} (and {path.name}.json): colorgan colorize PHOTOS -o OUT --model {path}", file=sys.stderr)
    return 0


def cmd_space_export(args: argparse.Namespace) -> int:
    from .space_export import export_space

    check_output_folder(args.output_dir, "output_dir")
    target = export_space(args.output_dir, overwrite=args.overwrite)
    tqdm.write(f"wrote a self-contained Space to {target}: push that folder to a Hugging Face Space "
               f"(or run it: pip install -r requirements.txt && python app.py)", file=sys.stderr)
    return 0


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from .data import build_pair_dataset

    out = Path(args.output_dir)
    check_output_folder(out, "-o")
    if not 0.0 < args.test_fraction < 1.0:  # NaN fails this too
        raise OptionError(f"--test-fraction must be between 0 and 1 (exclusive), got {args.test_fraction}")
    if not math.isfinite(args.tint_spread) or args.tint_spread < 0:
        raise OptionError(f"--tint-spread must be a finite number >= 0 (0 keeps tinted photos), got {args.tint_spread}")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        logger.error("%s exists and is not empty (pass --overwrite to replace it)", out)
        return 1
    pairs, report = build_pair_dataset(
        args.sources, size=args.size, resize_mode=args.resize_mode, min_size=args.min_size,
        test_fraction=args.test_fraction, seed=args.seed, image_column=args.image_column, num_proc=args.num_proc,
        max_photos=args.max_photos, tint_spread=args.tint_spread,
    )
    pairs.save_to_disk(str(out))
    write_atomic(out / "build_report.json", json.dumps(report.as_dict(), indent=2))
    # The counts on stdout; the list of dropped files (thousands, on a large folder) stays in the report.
    print(json.dumps(report.summary(), indent=2))
    if report.dropped_files:
        logger.info("each dropped file, and why: %s (dropped_files)", out / "build_report.json")
    if args.push_to_hub:
        pairs.push_to_hub(args.push_to_hub)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_models, format_confusion, format_table, save_json

    _check_evaluate_args(args)
    models = [run_generator(model) for model in args.model] if args.model else [None]
    result = evaluate_models(models, args.data, size=args.size, limit=args.limit, progress=not args.quiet,
                             saturation=args.saturation, vividness=args.vividness)
    if args.output:
        _write_output(args.output, "--output", lambda path: save_json(result, path))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result) + (f"\n\n{format_confusion(result)}" if args.confusion else ""))
    # As colorize: a photo that could not be scored is a failure of the run, though the others were scored.
    return 1 if result.get("failed") else 0


def _check_evaluate_args(args: argparse.Namespace) -> None:
    """What evaluate can refuse before the scoring (minutes to hours) rather than after it."""
    if not 1 <= args.size <= MAX_SIZE:  # the model's own stride is checked when it is loaded
        raise OptionError(f"--size must be between 1 and {MAX_SIZE} (the working resolution's short side), got {args.size}")
    data = Path(args.data)
    if not args.data:
        raise OptionError("--data: an empty path; name a folder of colour photos, a pair set or a Hub dataset id")
    if data.is_file():
        raise OptionError(f"--data {args.data}: is a file; name a folder of colour photos, a pair set or a Hub dataset id")
    # A Hub id is "name" or "owner/name"; anything else that is not there is a local folder that is missing.
    looks_local = args.data.startswith((".", "/", "~")) or "\\" in args.data or args.data.count("/") > 1
    if looks_local and not data.exists():
        raise OptionError(f"--data {args.data}: no such folder")
    if args.output:
        check_output_file(args.output, "--output", protected={}, overwrite=True)


def _read_evaluations(paths: list[str] | None) -> list[dict]:
    from .card import read_evaluations

    return read_evaluations(paths)


def cmd_card(args: argparse.Namespace) -> int:
    from .card import write_card
    from .evaluation import sample_grid
    from .registry import load_model

    generator = load_model(run_generator(args.model))
    out = write_card(
        args.output, generator, model=args.model, eval_json=args.eval_json or [], training_file=args.training,
        limitations_file=args.limitations, samples=args.sample or [], sample_rule=args.sample_rule, grid_data=args.grid_data,
        grid_compare=args.grid_compare or [], grid_count=args.grid_count, repo_id=args.repo_id, title=args.title,
        summary=args.summary, datasets=args.dataset or [],
        make_grid=lambda folder, count, compare: sample_grid(generator, folder, count=count, compare=compare),
        section_files=args.section or [],
    )
    tqdm.write(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .push import push_model

    training = Path(args.training).read_text() if args.training else None
    url = push_model(args.model, args.repo_id, evaluations=_read_evaluations(args.eval_json), training=training, private=args.private)
    print(url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorgan", description="Colorize black-and-white photographs with a GAN.")
    parser.add_argument("--version", action="version", version=f"colorgan {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress bars.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("colorize", help="Colorize photos, videos (.mp4, .mov, .mkv, ...) or folders of them.",
                       description="Colorize photos; folders are searched recursively (the output folder excepted). Each "
                                   "output is INPUT_color.EXT under -o, mirroring the folder layout (INPUT_EXT_color.EXT where "
                                   "several inputs share a name), in the input's format with its EXIF, ICC profile and DPI. A bad "
                                   "file is reported in one line and the rest go on; the exit status is 1 if any failed.")
    p.add_argument("inputs", nargs="+", help="Image files and/or folders.")
    p.add_argument("-o", "--output-dir", required=True, help="Folder for the colorized images (created if missing).")
    p.add_argument("--model", default=None,
                   help="Shipped name (default, fast, vivid, paper), a generator folder, a training run's folder (its generator/) "
                        "or a Hub id. Default: the shipped default model for photos, the shipped vivid one (its wider U-Net "
                        "alone, two-thirds of its computation per frame) for videos.")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"Short side of the working resolution the network runs at, from the model's stride (16) to {MAX_SIZE} "
                        f"(default {DEFAULT_SIZE}).")
    p.add_argument("--saturation", type=float, default=1.0, help="Multiply the predicted chroma (default 1.0; 0 gives gray).")
    p.add_argument("--vividness", type=float, default=None,
                   help=f"0-1, for {VIVIDNESS_MODELS}. 0 takes the distribution's mean (muted, safe), 1 its most likely "
                        "colour (vivid, sometimes wrong); default: the model's own.")
    p.add_argument("--auto-contrast", action="store_true",
                   help="For faded or low-contrast scans: show the network each photo's tones stretched to the whole range "
                        "(its darkest 0.5%% to black, its lightest to white), which it colours more truly; the output keeps "
                        "the photo's own tones. Photos only (README, Faded photos).")
    p.add_argument("--format", default=None,
                   help=f"Output format: {', '.join(sorted(WRITABLE_FORMATS))}; default: the input's (PNG for GIF and BMP).")
    p.add_argument("--quality", type=int, default=None,
                   help="JPEG/WebP quality 1-100. Default: a JPEG input's own quantization (no worse than it came), else 95.")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="Replace existing outputs (inputs are never overwritten).")
    existing.add_argument("--skip-existing", action="store_true",
                          help="Leave existing outputs as they are and colorize only the rest (counted in the summary): "
                               "a killed run, started again with it, does what was left.")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"Photos of the same working shape that go through the network together (default: {DEFAULT_BATCH_SIZE} on "
                        "a GPU, 1 on a CPU, where larger batches are slower per photo).")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help="Threads per process that decode and encode photos while the network runs on one photo at a time (default "
                        f"{DEFAULT_WORKERS}; 0: one photo after another in one thread).")
    p.add_argument("--threads", type=int, default=None,
                   help="Threads per process (default: torch's own for one process; under accelerate launch, "
                        "this machine's cores divided by its processes).")
    p.add_argument("--photos-at-once", type=int, default=None,
                   help="Photos colorized side by side in each process, each on its share of --threads, from reading "
                        "to writing (--batch-size and --workers then unused). Default: on a CPU with --batch-size 1 "
                        "and at least 4 photos a thread, one photo per thread (faster than all threads on one photo's "
                        "operations); else 1.")
    p.add_argument("--device", default=None,
                   help="Where the network runs: cpu, cuda, cuda:1, ... (default: the process's GPU under accelerate "
                        "launch, else the GPU if there is one, else the CPU).")
    p.add_argument("--bf16", action="store_true",
                   help=BF16_HELP)
    p.add_argument("--hints", default=None, metavar="HINTS.json",
                   help="Colour hints for a single input photo: a JSON list of points {\"x\", \"y\", \"color\"}, strokes "
                        "{\"points\": [[x, y], ...], \"width\", \"color\"} and masks {\"mask\": \"mask.png\", \"color\"} in pixels "
                        "of the photo, colours as \"#rrggbb\" or [r, g, b] (README, Colour hints).")
    p.add_argument("--video-size", type=int, default=VIDEO_SIZE,
                   help=f"Videos (.mp4, .mov, .mkv, .avi, .webm, ...; written as INPUT_color.mp4, H.264 with the sound kept): "
                        f"short side of their working resolution (default {VIDEO_SIZE}; --size is for photos).")
    p.add_argument("--stability", type=float, default=VIDEO_STABILITY,
                   help=f"Videos: 0 to 1, how much each frame's colours are averaged with the frames around it along "
                        f"the motion (0: frame by frame; default {VIDEO_STABILITY:g}: an even average over each steady stretch); "
                        f"a scene cut always starts afresh.")
    p.set_defaults(func=cmd_colorize)

    d = sub.add_parser("colorize-dataset", help="Colorize the image column of a Hub or local `datasets` dataset.",
                       description="Map every split of a Hub dataset, a save_to_disk folder or a folder of images through the "
                                   "model with `datasets` (map, batched), keeping every other column: the colorized image goes "
                                   "into --output_column, a row that cannot be read keeps it empty with the reason in "
                                   "colorize_error. Saved with save_to_disk to -o, or Parquet shards there with --streaming, "
                                   "and/or pushed with --push_to_hub. Under accelerate launch each process takes a shard.")
    d.add_argument("dataset", help="A Hub dataset id, a folder written by save_to_disk, or a folder of images.")
    d.add_argument("-o", "--output-dir", default=None, help="Folder to write the colorized dataset to.")
    d.add_argument("--push_to_hub", "--push-to-hub", dest="push_to_hub", default=None, metavar="REPO_ID",
                   help="Also (or instead of -o) push the colorized dataset to this Hub dataset repo.")
    d.add_argument("--image_column", "--image-column", dest="image_column", default="image", help="The image column (default image).")
    d.add_argument("--output_column", "--output-column", dest="output_column", default="colorized",
                   help="The new column for the colorized images (default colorized).")
    d.add_argument("--split", default=None, help="Only this split (default: every split).")
    d.add_argument("--streaming", action="store_true",
                   help="Read the input as it goes (nothing downloaded first) and write Parquet shards to -o "
                        "(or push to the Hub): for sets larger than the disk.")
    d.add_argument("--model", default=None, help="Shipped name, generator folder, training run folder or Hub id (default: the shipped default).")
    d.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"Working resolution's short side (default {DEFAULT_SIZE}).")
    d.add_argument("--saturation", type=float, default=1.0, help="Multiply the predicted chroma (default 1.0).")
    d.add_argument("--vividness", type=float, default=None, help=f"0-1, for {VIVIDNESS_MODELS} (default: the model's own).")
    d.add_argument("--auto-contrast", action="store_true",
                   help="Show the network each photo's tones stretched to the whole range, for faded scans (as colorize --auto-contrast).")
    d.add_argument("--quality", type=int, default=None, help="JPEG/WebP quality 1-100 (default: a JPEG row's own quantization, else 95).")
    d.add_argument("--batch-size", type=int, default=None,
                   help=f"Photos of the same working shape that go through the network together (default: {DEFAULT_BATCH_SIZE} "
                        "on a GPU, 1 on a CPU).")
    d.add_argument("--map-batch-size", type=int, default=64, help="Rows handed to each datasets.map call (default 64).")
    d.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=f"Decoding/encoding threads per process (default {DEFAULT_WORKERS}).")
    d.add_argument("--threads", type=int, default=None, help="Torch threads per process (default: as colorize).")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: as colorize).")
    d.add_argument("--bf16", action="store_true", help=BF16_HELP)
    d.set_defaults(func=cmd_colorize_dataset)

    e = sub.add_parser("evaluate", help="Score models on colour photos beside the no-colour baseline.",
                       description="Turn each colour photo gray, colorize it at full resolution through the same pipeline users "
                                   "get, and score it with the shipped `evaluate` metrics (PSNR, SSIM, CIEDE2000, colourfulness and "
                                   "its ratio to the truth, mean a*/b* shift, ab AuC, the paper's MSE). A `gray` row (chroma removed) "
                                   "is the baseline.")
    e.add_argument("--model", action="append", default=None,
                   help="Shipped name, generator folder, training run folder (its generator/) or Hub id; repeat for several rows. "
                        "Default: the shipped default.")
    e.add_argument("--data", required=True, help="A folder of colour photos (recursive), a pair set saved by build-dataset (its test split), or a Hub dataset id.")
    e.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"Working resolution (short side) of the pipeline (default {DEFAULT_SIZE}).")
    e.add_argument("--limit", type=int, default=None, help="Score only the first N photos.")
    e.add_argument("--vividness", type=float, default=None,
                   help=f"As `colorize --vividness`, for {VIVIDNESS_MODELS}. 0 takes the distribution's mean (muted, safe), "
                        "1 its most likely colour (vivid); default: each model's own.")
    e.add_argument("--saturation", type=float, default=1.0,
                   help="Multiply every model's predicted chroma by this, as `colorize --saturation` does (default 1.0): "
                        "measures the trade between colourfulness and colour error.")
    e.add_argument("--confusion", action="store_true",
                   help="Also print, for each model, where each truth colour went: per hue class of the truth (and neutral), "
                        "the share of its pixels painted in each class, and each painted class's precision (the counts are "
                        "in the JSON as hue_confusion either way).")
    e.add_argument("--json", action="store_true", help="Print the result as JSON instead of a table.")
    e.add_argument("--output", default=None, help="Also write the JSON result to this file.")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("card", help="Write a model card with measured results.",
                       description="Render the model card of a generator (Hub YAML with a model-index of the numbers in "
                                   "`colorgan evaluate --output` files, usage, training, results tables, samples, limitations).")
    c.add_argument("--model", default=None,
                   help="Shipped name, generator folder, training run folder or Hub id (default: the shipped default).")
    c.add_argument("--eval-json", action="append", help="A `colorgan evaluate --output` file; repeat for several data sets.")
    c.add_argument("--training", default=None, help="A text/markdown file describing how the model was trained.")
    c.add_argument("--limitations", default=None, help="A markdown file with extra limitations.")
    c.add_argument("--section", action="append", metavar="FILE.md",
                   help="A markdown section (with its own heading) placed before the limitations, e.g. docs/cards/hints.md "
                        "written by bench/hints.py; repeatable.")
    c.add_argument("--sample", action="append", help="Path (relative to the card) of a sample image; repeatable.")
    c.add_argument("--sample-rule", default="", help="How the sample photos were chosen.")
    c.add_argument("--grid-data", default=None, help="A folder of colour photos: write a gray / colorized / original grid of every k-th one beside the card.")
    c.add_argument("--grid-compare", action="append", metavar="MODEL",
                   help="Another generator (name or path) whose colorization gets a column of the grid before this model's; repeatable.")
    c.add_argument("--grid-count", type=int, default=12, help="Photos in the sample grid (default 12).")
    c.add_argument("--repo-id", default=None,
                   help="Hub id shown in the usage snippet, its last part the model-index name (default: a shipped model's "
                        "own id; for a folder, its path and its name, a run's name for a run's generator/).")
    c.add_argument("--title", default=None, help="Card title.")
    c.add_argument("--summary", default="", help="One paragraph under the title.")
    c.add_argument("--dataset", action="append", help="Dataset id for the metadata; repeatable.")
    c.add_argument("-o", "--output", default="model_card.md", help="Where to write the card (default model_card.md).")
    c.set_defaults(func=cmd_card)

    h = sub.add_parser("push", help="Push a generator, its discriminator config, a card and samples to the Hub in one commit.",
                       description="Upload a trained generator to a Hugging Face Hub model repository in one commit: its "
                                   "weights and config, the discriminator's config when the folder has one, the newest grids "
                                   "of samples/, and a model card rendered with the numbers of --eval-json files and the "
                                   "--training notes. Needs a Hub login (`hf auth login`) with write access.")
    h.add_argument("--model", required=True, help="A training output folder (generator/, discriminator/, samples/) or a generator folder.")
    h.add_argument("--repo-id", required=True, help="Hub repository id, e.g. you/colorgan-default.")
    h.add_argument("--eval-json", action="append", help="`colorgan evaluate --output` files whose numbers go into the card.")
    h.add_argument("--training", default=None, help="A text/markdown file describing how the model was trained.")
    h.add_argument("--private", action="store_true", help="Create the repository as private.")
    h.set_defaults(func=cmd_push)

    g = sub.add_parser("suggest-hints", help="Where colour hints would help a photo most: spots to give known colours at.",
                       description="Print the spots (x, y) of a photo where a colour you know would correct the model the "
                                   "most, best first: each the centre of a large region of even lightness, chosen where "
                                   "the model is least sure and the earlier spots' hints do not reach (README, Colour hints).")
    g.add_argument("photo", help="The photo (any format colorize takes).")
    g.add_argument("-n", "--count", type=int, default=5, help="How many spots, 1 to 50 (default 5); the first n of more are the best n.")
    g.add_argument("-o", "--output", default=None,
                   help="Also write a hints file (JSON) of the spots, their colours left empty (null) to fill in, for "
                        "`colorgan colorize PHOTO --hints FILE`; the hints of --hints come first, as they were, so "
                        "`--hints h.json -o h.json` adds the next spots to your file.")
    g.add_argument("--marked", default=None, help="Also write the photo with the spots ringed and numbered (PNG, JPEG, ...).")
    g.add_argument("--hints", default=None, metavar="HINTS.json",
                   help="The hints you have already given (a hints file, as colorize --hints takes): the spots go where they "
                        "do not reach.")
    g.add_argument("--model", default=None, help="Shipped name, generator folder, run folder or Hub id (default: the shipped default); "
                                                 "use the one you will colorize with.")
    g.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"Working resolution's short side, as for colorize (default {DEFAULT_SIZE}).")
    g.add_argument("--auto-contrast", action="store_true", help="As for colorize: for faded scans.")
    g.add_argument("--overwrite", action="store_true",
                   help="Replace an existing -o or --marked file. Without it an existing file is refused, except -o naming the "
                        "--hints file itself, which is updated (its hints kept, the new spots added). The photo is never replaced.")
    g.set_defaults(func=cmd_suggest_hints)

    o = sub.add_parser("export-onnx", help="Export a generator to ONNX, for onnxruntime (`colorize --model FILE.onnx`).",
                       description="Export the generator's colour prediction (L at the working resolution in, a*b* out; "
                                   "batch, height and width dynamic) to ONNX, with FILE.onnx.json beside it. `colorize --model "
                                   "FILE.onnx` then runs it with onnxruntime; the rest of the pipeline is unchanged.")
    o.add_argument("-o", "--output", required=True, help="The .onnx file to write.")
    o.add_argument("--model", default=None, help="Shipped name, generator folder, training run folder or Hub id (default: the shipped default).")
    o.add_argument("--vividness", type=float, default=None,
                   help=f"Baked into the export, for {VIVIDNESS_MODELS} (default: the model's own).")
    o.set_defaults(func=cmd_export_onnx)

    x = sub.add_parser("space-export", help="Write a self-contained, deployable Hugging Face Space.",
                       description="Write the demo as a Space that needs nothing else: app.py and its examples, this package "
                                   "vendored beside it (code and shipped weights), README.md with the Space front matter, and a "
                                   "requirements.txt whose every line is a PyPI package pinned to the version installed here.")
    x.add_argument("output_dir", help="Folder to write (created).")
    x.add_argument("--overwrite", action="store_true", help="Replace a non-empty folder.")
    x.set_defaults(func=cmd_space_export)

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
    b.add_argument("--seed", type=int, default=0, help="Seed of the split shuffle (and of the --max-photos draw).")
    b.add_argument("--max-photos", type=int, default=None,
                   help="Keep a random N of the usable photos (seeded by --seed), e.g. 3000 for the paper's scale.")
    b.add_argument("--tint-spread", type=float, default=TINT_MINOR_SPREAD, metavar="LAB_UNITS",
                   help="Drop a photo as a tinted print (sepia, cyanotype, a colour cast) when its colours spread less than "
                        f"this across their main hue line, in Lab units (default {TINT_MINOR_SPREAD}). Photos of one "
                        "colour (snow, fog, sea) sit near the line too: lower it to keep more of them, 0 keeps every tinted "
                        "photo. train/probe_tint.py measures what a value drops on your folder.")
    b.add_argument("--image-column", default="image", help="Image column of Hub datasets.")
    b.add_argument("--num-proc", type=int, default=None, help="Worker processes for decoding.")
    b.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="Also push the pair set to this Hub dataset repo.")
    b.add_argument("--overwrite", action="store_true", help="Replace a non-empty output folder.")
    b.set_defaults(func=cmd_build_dataset)
    return parser


class _LowerCaseLevels(logging.Formatter):
    """"colorgan: error: ...", as the per-file lines and argparse write it (logging says "ERROR")."""

    def format(self, record: logging.LogRecord) -> str:
        # A copy: the record also goes to any other handler (pytest's, a caller's) as it came.
        return super().format(logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()}))


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(_LowerCaseLevels("colorgan: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # The HTTP client logs every request at INFO: a push would print a line per upload.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        # Checked once for every command that takes them, before any model or photo is loaded.
        check_options(getattr(args, "saturation", 1.0), getattr(args, "vividness", None), flag="--")
        return args.func(args)
    except ColorGANError as error:
        logger.error("%s", error)
        return 1
    except ModuleNotFoundError as error:
        # An optional extra left out of the install: which one to add, not a traceback.
        missing = missing_extra(f"colorgan {args.command}", error.name)
        if missing is None:
            raise
        logger.error("%s", missing)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

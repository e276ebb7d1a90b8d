"""Archive-scale colorization throughput (issue 19): photos/s of today's per-file loop against
the batch engine in one process and in two processes under ``accelerate launch``.

    runs/quiet.sh python bench/archive.py            # 500 photos, writes bench/archive.json

The photos are a fixed mix of sizes from ``../shared/data/photos/train`` (BSDS500 384x256,
ImageNet ~341-500x256, wallpapers ~820x512, Intel scenes 150x150), every k-th file of each
source in sorted order, linked into a temporary folder. Each configuration runs as its own
command, end to end (start-up and model loading included), into its own empty output folder:

- ``today``: the per-file loop ``colorgan colorize`` ran before the batch engine: for each
  file, ``colorize(file)`` then ``save_image_atomic`` with its metadata, decode and encode
  serial, torch's default threads;
- ``1 process x 2 threads, on one photo at a time``: ``colorgan colorize --threads 2
  --photos-at-once 1`` (both threads on each photo's operations; decode and encode on worker
  threads);
- ``1 process x 2 threads, a photo on each``: ``colorgan colorize --threads 2`` (the CPU
  default for a folder: two photos side by side, each on one thread from reading to writing);
- ``2 processes x 1 thread``: ``accelerate launch --multi_gpu --num_processes 2 -m
  colorgan_hf.cli colorize --threads 1`` on the CPU (ACCELERATE_USE_CPU=1), as the training tests do;
- ``1x2`` and ``2x1`` again with ``--bf16`` (the network in bfloat16, which CPUs with AVX-512 BF16
  or AMX run about twice as fast: different colours, so their distance from the float32 outputs
  is printed, in 8-bit levels and in CIEDE2000, and each set's CIEDE2000 from the photos' true
  colours, where a loss of quality would show);
- the two fastest float32 ones again with ``--model colorgan-default.onnx``: the shipped model
  exported once by ``colorgan export-onnx`` before the timings, run by ONNX Runtime (float32;
  its distance from PyTorch's outputs printed).

Two rates are printed: end to end (photos over the command's wall time, start-up included:
``accelerate launch`` of two processes costs several seconds more than one process), and
steady (photos between the first and the last output written, over that time): what a
long archive run sees.

With ``--network``, the network alone on one thread (CPU ms a photo, and the GFLOP/s that makes
with the FLOPs of the photos' working shapes) beside one core's ceiling, a 2048x2048 matrix
product in float32 and in bfloat16.

Printed, not asserted: timings depend on the machine and what else runs on it (the load
average before each configuration is printed beside it; CPU milliseconds a photo, all of a
command's processes together, are less sensitive to other work than photos/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "train"
# (source folder, photos taken): 500 in all, sizes from 150x150 to ~910x512.
MIX = [("bsds500", 120), ("imagenet", 200), ("wallpapers", 37), ("intel_scenes", 143)]


def pick_photos(root: Path, mix: list[tuple[str, int]], scale: float = 1.0) -> list[tuple[str, Path]]:
    """Every k-th photo of each source folder (sorted), ``count * scale`` of each: the same list on every run."""
    chosen = []
    for name, count in mix:
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        count = min(len(files), max(1, round(count * scale)))
        step = len(files) / count
        chosen += [(name, files[int(i * step)]) for i in range(count)]
    return chosen


def old_loop(inputs: list[str], out_dir: str, size: int) -> None:
    """Today's CLI, as ``cmd_colorize`` ran before the batch engine: one photo at a time, serial."""
    from colorgan_hf.cli import _collect_inputs, _output_paths
    from colorgan_hf.images import read_metadata, save_image_atomic
    from colorgan_hf.pipeline import _generator, colorize

    out = Path(out_dir)
    jobs = _collect_inputs(inputs, out)
    model = _generator(None)
    targets = _output_paths(jobs, out, None)
    for (file, _), target in zip(jobs, targets):
        result = colorize(file, model, size=size)
        save_image_atomic(result, target, metadata=read_metadata(file))


def network_costs(photos: list[tuple[str, Path]], size: int, batch_sizes: tuple[int, ...] = (1, 2, 8),
                  onnx_model: Path | None = None) -> list[dict]:
    """CPU ms a photo of the network alone, on one thread, for the unchanged shipped generator and the engine's copy
    (batch norms folded, channels-last), at each batch size (photos of one working shape together), and for ONNX
    Runtime (batch 1) with ``onnx_model``; with the FLOPs of the photos' working shapes, the rate each reaches
    (GFLOP/s of one core: how near it runs to what float32 arithmetic on that core can do)."""
    import torch
    from model_stats import forward_flops  # bench/, beside this script

    from colorgan_hf import load_default
    from colorgan_hf.batch import place_generator
    from colorgan_hf.images import load_image
    from colorgan_hf.pipeline import _prepare

    torch.set_num_threads(1)
    plain = load_default().eval()
    placed = place_generator(plain, "cpu")
    groups: dict[tuple[int, ...], list] = {}
    for _, path in photos:
        small = _prepare(load_image(path), plain, size, None).l_small
        groups.setdefault(tuple(small.shape[2:]), []).append(small)
    flops = sum(forward_flops(plain, smalls[0]) * len(smalls) for smalls in groups.values())
    gflop_per_photo = flops / len(photos) / 1e9
    print(f"network: {gflop_per_photo:.2f} GFLOP a photo on average (forward pass at the working shapes)", flush=True)
    models = [("unchanged", plain, batch_sizes), ("engine's copy", placed, batch_sizes)]
    if onnx_model is not None:
        from colorgan_hf.onnx import OnnxGenerator

        models.append(("ONNX Runtime", OnnxGenerator(onnx_model, threads=1), (1,)))
    rows = []
    # The core's ceiling: a large matrix product, the best case of the arithmetic the network is made of.
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        start = time.process_time()
        for _ in range(5):
            a @ b
        rate = 5 * 2 * 2048**3 / (time.process_time() - start) / 1e9
        rows.append({"model": f"2048x2048 matrix product, {dtype}", "gflop_per_s": round(rate, 1)})
        print(f"one core's ceiling: a 2048x2048 {dtype} matrix product at {rate:6.1f} GFLOP/s", flush=True)
    with torch.inference_mode():
        for name, model, sizes in models:
            model.predict_ab(next(iter(groups.values()))[0], None)  # warm-up
            for batch_size in sizes:
                start = time.process_time()
                for smalls in groups.values():
                    for i in range(0, len(smalls), batch_size):
                        model.predict_ab(torch.cat(smalls[i : i + batch_size]), None)
                ms = 1000 * (time.process_time() - start) / len(photos)
                rate = gflop_per_photo / (ms / 1000)
                rows.append({"model": name, "batch_size": batch_size, "cpu_ms_per_photo": round(ms, 1),
                             "gflop_per_s": round(rate, 1)})
                print(f"network, {name:14s} batch {batch_size}: {ms:6.1f} CPU ms/photo, {rate:6.1f} GFLOP/s", flush=True)
    return rows


def colour_difference(a: Path, b: Path, label: str, truth: Path | None = None) -> dict | None:
    """How far the outputs in ``b`` are from those of the same names in ``a``: in 8-bit levels over all pixels, and in
    CIEDE2000 (a perceptual distance: about 2.3 is a just-noticeable difference). With ``truth`` (the input folder),
    also each set's mean CIEDE2000 from the true colours of its photos, the figure a quality loss would show in."""
    import numpy as np
    import torch
    from PIL import Image

    from colorgan_hf.metrics.functional import ciede2000_map, rgb_to_lab

    if not (a.is_dir() and b.is_dir()):
        return None
    sources = {}
    if truth is not None:
        for path in truth.rglob("*"):
            sources[(path.parent.relative_to(truth), path.stem)] = path

    def lab(array: np.ndarray) -> torch.Tensor:
        return rgb_to_lab(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255)

    total = count = over_one = 0
    worst = 0
    de_sum = de_over_1 = de_pixels = 0.0
    from_truth = {"a": [], "b": []}
    for left in sorted(p for p in a.rglob("*") if p.is_file() and not p.name.startswith(".")):
        x = np.array(Image.open(left).convert("RGB"))
        y = np.array(Image.open(b / left.relative_to(a)).convert("RGB"))
        d = np.abs(x.astype(np.int16) - y.astype(np.int16))
        total, count = total + int(d.sum()), count + d.size
        over_one, worst = over_one + int((d > 1).sum()), max(worst, int(d.max()))
        lab_x, lab_y = lab(x), lab(y)
        de = ciede2000_map(lab_x, lab_y)
        de_sum, de_over_1, de_pixels = de_sum + float(de.sum()), de_over_1 + float((de > 1).sum()), de_pixels + de.numel()
        source = sources.get((left.parent.relative_to(a), left.stem.removesuffix("_color")))
        if source is not None:
            true = lab(np.array(Image.open(source).convert("RGB")))
            from_truth["a"].append(float(ciede2000_map(lab_x, true).mean()))
            from_truth["b"].append(float(ciede2000_map(lab_y, true).mean()))
    result = {"mean": round(total / count, 3), "max": worst, "share_over_1": round(over_one / count, 4),
              "ciede2000_mean": round(de_sum / de_pixels, 3), "ciede2000_share_over_1": round(de_over_1 / de_pixels, 4)}
    print(f"{label} against PyTorch float32 (2x1 outputs): mean {result['mean']} levels, max {worst}, "
          f"{100 * result['share_over_1']:.1f}% of values more than 1 level apart; CIEDE2000 mean {result['ciede2000_mean']:.3f}, "
          f"{100 * result['ciede2000_share_over_1']:.2f}% of pixels over 1", flush=True)
    if from_truth["a"]:
        result["ciede2000_from_truth"] = {"float32": round(float(np.mean(from_truth["a"])), 3),
                                          label: round(float(np.mean(from_truth["b"])), 3), "photos": len(from_truth["a"])}
        print(f"  CIEDE2000 from the true colours, mean over {len(from_truth['a'])} photos: float32 "
              f"{np.mean(from_truth['a']):.3f}, {label} {np.mean(from_truth['b']):.3f}", flush=True)
    return result


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds and CPU seconds (user + system, all its processes) of a command, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of the 500-photo mix to use (default 1).")
    parser.add_argument("--size", type=int, default=256, help="Working resolution (default 256, the CLI's).")
    parser.add_argument("--batch-size", type=int, default=None, help="--batch-size of the engine (default: its own, 1 on a CPU).")
    parser.add_argument("--only", nargs="*", default=None, help="Run only these configurations (today, 1x2-one, 1x2, 2x1, 1x2-bf16, 2x1-bf16, 1x2-onnx, 2x1-onnx, 2x1-b8; default: all but 2x1-b8).")
    parser.add_argument("--output", default=str(Path(__file__).with_name("archive.json")), help="JSON result file.")
    parser.add_argument("--network", action="store_true",
                        help="Also time the network alone (one thread, every 5th photo): unchanged vs the engine's copy, batches 1, 2, 8, "
                             "and ONNX Runtime; with its FLOPs, the GFLOP/s each reaches.")
    parser.add_argument("--old-loop", nargs=2, metavar=("INPUT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old_loop:
        old_loop([args.old_loop[0]], args.old_loop[1], args.size)
        return

    photos = pick_photos(PHOTOS, MIX, args.scale)
    work = Path(tempfile.mkdtemp(prefix="colorgan-archive-bench-"))
    src = work / "in"
    for name, path in photos:
        link = src / name / path.relative_to(PHOTOS / name).as_posix().replace("/", "_")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # The shipped default exported once, before any timing (`colorgan export-onnx`): float32, as PyTorch's.
    onnx_model = work / "colorgan-default.onnx"
    subprocess.run([sys.executable, "-m", "colorgan_hf.cli", "-q", "export-onnx", "-o", str(onnx_model)], env=env, check=True)
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    cli = [sys.executable, "-m", "colorgan_hf.cli", "-q", "colorize", str(src), "--size", str(args.size), *batch]
    accelerate = shutil.which("accelerate") or "accelerate"
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "colorgan_hf.cli", "-q", "colorize", str(src), "--size", str(args.size), *batch]
    configs = {
        "today": ([sys.executable, __file__, "--size", str(args.size), "--old-loop", str(src)], env, "the per-file loop (decode, colorize, encode in turn)"),
        "1x2-one": ([*cli, "--threads", "2", "--workers", "2", "--photos-at-once", "1"], env,
                    "1 process x 2 threads, on one photo at a time"),
        "1x2": ([*cli, "--threads", "2"], env, "1 process x 2 threads, a photo on each"),
        "2x1": ([*launch, "--threads", "1", "--workers", "1"], {**env, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"},
                "2 processes x 1 thread (accelerate launch)"),
        "1x2-bf16": ([*cli, "--threads", "2", "--bf16"], env, "1 process x 2 threads, a photo on each, --bf16"),
        "2x1-bf16": ([*launch, "--threads", "1", "--workers", "1", "--bf16"], {**env, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"},
                     "2 processes x 1 thread, --bf16"),
        "1x2-onnx": ([*cli, "--threads", "2", "--workers", "2", "--model", str(onnx_model)], env,
                     "1 process x 2 threads, ONNX Runtime"),
        "2x1-onnx": ([*launch, "--threads", "1", "--workers", "1", "--model", str(onnx_model)],
                     {**env, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}, "2 processes x 1 thread, ONNX Runtime"),
        # Not run by default: batches of 8 photos of one working shape on the CPU (slower per photo there).
        "2x1-b8": ([*launch, "--threads", "1", "--workers", "1", "--batch-size", "8"],
                   {**env, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}, "2 processes x 1 thread, batches of 8"),
    }
    rows = []
    try:
        for key, (cmd, run_env, label) in configs.items():
            if (args.only and key not in args.only) or (not args.only and key == "2x1-b8"):
                continue
            out = work / f"out-{key}"
            full = [*cmd, str(out)] if key == "today" else [*cmd, "-o", str(out)]
            load = os.getloadavg()[0]
            seconds, cpu, log = timed(full, run_env)
            stamps = sorted(p.stat().st_mtime for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
            written = len(stamps)
            # Steady rate: from the first output written to the last (start-up and model loading left out), as a long run sees it.
            steady = (written - 1) / (stamps[-1] - stamps[0]) if written > 1 and stamps[-1] > stamps[0] else float("nan")
            if written != len(photos):
                raise SystemExit(f"{key}: wrote {written} of {len(photos)} photos\n{log[-2000:]}")
            rows.append({"config": key, "label": label, "photos": len(photos), "seconds": round(seconds, 2),
                         "photos_per_s": round(len(photos) / seconds, 2), "steady_photos_per_s": round(steady, 2),
                         "cpu_s_per_photo": round(cpu / len(photos), 4),
                         "load_before": round(load, 2)})
            print(f"{label:45s} {len(photos)} photos in {seconds:7.1f} s  {len(photos) / seconds:6.2f} photos/s  "
                  f"(steady {steady:6.2f})  {1000 * cpu / len(photos):5.0f} CPU ms/photo  (load average before: {load:.1f})",
                  flush=True)
        bf16_difference = colour_difference(work / "out-2x1", work / "out-1x2-bf16", "--bf16", truth=src)
        onnx_difference = colour_difference(work / "out-2x1", work / "out-2x1-onnx", "ONNX Runtime")
        network = network_costs(photos[::5], args.size, onnx_model=onnx_model) if args.network else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = next((r for r in rows if r["config"] == "today"), None)
    if base:
        for row in rows:
            row["vs_today"] = round(row["photos_per_s"] / base["photos_per_s"], 2)
            row["steady_vs_today"] = round(row["steady_photos_per_s"] / base["steady_photos_per_s"], 2)
        print("\n| configuration | photos/s end to end | x today's CLI | steady photos/s (first to last output) | x today's CLI "
              "| CPU ms/photo |\n| --- | --- | --- | --- | --- | --- |")
        for row in rows:
            print(f"| {row['label']} | {row['photos_per_s']:.2f} | {row['vs_today']:.2f} | {row['steady_photos_per_s']:.2f} "
                  f"| {row['steady_vs_today']:.2f} | {1000 * row['cpu_s_per_photo']:.0f} |")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "size": args.size, "batch_size": args.batch_size,
              "mix": {name: sum(1 for n, _ in photos if n == name) for name, _ in MIX}, "rows": rows, "network": network,
              "bf16_vs_float32_levels": bf16_difference, "onnx_vs_float32_levels": onnx_difference,
              "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()

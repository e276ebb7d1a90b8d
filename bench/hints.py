"""Colour hints (issue 17), measured: how much k simulated hints help, how local one hint stays,
and what 20 hints cost at 1 megapixel.

    python bench/hints.py [--data ../shared/data/photos/eval/bsds500_test] [--limit N] \
        [--parts table,locality,timing] [--json bench/hints.json]
    runs/quiet.sh python bench/hints.py --parts timing      # timings with the background training paused
    python bench/hints.py --tune --data ../shared/data/photos/train/bsds500 --limit 40

Protocol (the issue's): each colour photo is turned gray exactly as `colorgan evaluate` does
(8-bit, chroma removed) and colorized at the default working size by the shipped default
model. Hints are simulated from the truth: k points at uniformly random pixel positions
(seeded per photo, nested: the 5 points include the 1, the 10 include the 5, ...), each given
the true sRGB colour averaged over the 5x5 patch around it, rounded to 8 bits as a person
would give it. Metrics are the package's own (`colorgan_hf.metrics.functional`): PSNR and
CIEDE2000 averaged over photos, hue recall pooled over the set, as in `colorgan evaluate`.

Locality: the first point alone (k = 1). "patch": mean CIEDE2000 over the 15x15 patch around
it between the result and the hint's colour at the result's own lightness (the hint sets
chroma; the photo keeps its L). "moved": the share of the photo's pixels whose colour moved by
more than 2 CIEDE2000 units from the hint-free result.

Timing: `colorize(path, hints=20 points)` of a 1-megapixel JPEG (a test photo enlarged),
decode included, median of 5 after a warm-up, beside the same call without hints.

The network runs once per photo; each k reuses its prediction through the same functions
`colorize(..., hints=)` calls (checked byte-for-byte against `colorize` on the first photo).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorgan_hf import colorize, load_default, suggest_hints  # noqa: E402
from colorgan_hf.color import rgb_to_lab  # noqa: E402
from colorgan_hf.evaluation import gray_baseline  # noqa: E402
from colorgan_hf.hints import CHUNK, DEFAULT_EDGE_COST, DEFAULT_FLATTEN, DEFAULT_EDGE_SQUARE, DEFAULT_REACH, DEFAULT_SHARPNESS, DEFAULT_SMOOTH, combine, hint_ab, hint_geometry, parse_hints  # noqa: E402
from colorgan_hf.images import find_images, load_image  # noqa: E402
from colorgan_hf.metrics.functional import PooledColorStats, ciede2000_map, psnr  # noqa: E402
from colorgan_hf.metrics.modules import to_array  # noqa: E402
from colorgan_hf.pipeline import DEFAULT_SIZE, _finish, _prepare  # noqa: E402

KS = (0, 1, 5, 10, 20, 50)
HUE_CLASSES = ("red", "yellow", "green", "blue", "purple")
SUGGEST_KS = (1, 3, 5, 10, 20)
PATCH = 15  # side of the patch a single hint must colour
PICK = 5  # side of the patch a simulated hint's colour is averaged over
MOVED_DE = 2.0
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "photos" / "eval" / "bsds500_test"


def hints_at(reference: np.ndarray, points: list[tuple[int, int]]) -> list[dict]:
    """A point hint at each (x, y) of ``reference`` (H, W, 3) uint8, its colour the mean of the
    PICK x PICK patch around it (clipped at the borders), as a person would pick it."""
    half = PICK // 2
    hints = []
    for x, y in points:
        patch = reference[max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1].reshape(-1, 3)
        hints.append({"x": x, "y": y, "color": [int(round(c)) for c in patch.mean(0)]})
    return hints


def simulated_hints(reference: np.ndarray, count: int, seed: int) -> list[dict]:
    """``count`` point hints at random pixels of ``reference`` (H, W, 3) uint8 (:func:`hints_at`)."""
    height, width = reference.shape[:2]
    rng = np.random.default_rng(seed)
    xs, ys = rng.integers(0, width, count), rng.integers(0, height, count)
    return hints_at(reference, list(zip(xs.tolist(), ys.tolist())))


def to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float()[None] / 255.0


class Colorizer:
    """`colorize(gray, model, hints=...)` for nested hint lists of one photo: the network runs
    once per photo and each hint's geodesic distances once per edge cost, then every k takes
    the first k of them through the same functions `colorize(..., hints=)` calls (the
    propagation grid is the working grid at these sizes)."""

    def __init__(self, model, size: int) -> None:
        self.model, self.size = model, size

    @torch.inference_mode()
    def predict(self, gray: np.ndarray, hints: list[dict]) -> None:
        self.prepared = _prepare(gray, self.model, self.size, None)
        self.ab = self.model.predict_ab(self.prepared.l_small, None)[0].float()
        self.hints = parse_hints(hints)
        self.targets = hint_ab(self.hints) if self.hints else torch.zeros(0, 2)
        self.geometry: dict[tuple[float, float], tuple[torch.Tensor, torch.Tensor]] = {}

    def _geometry(self, *options: float) -> tuple[torch.Tensor, torch.Tensor]:
        if options not in self.geometry:
            pieces = list(hint_geometry(self.hints, tuple(self.prepared.l_full.shape[2:]), self.prepared.l_small[0, 0].float(), *options))
            self.geometry[options] = (torch.cat([m for m, _ in pieces]), torch.cat([d for _, d in pieces]))
        return self.geometry[options]

    @torch.inference_mode()
    def result(self, k: int, reach: float = DEFAULT_REACH, edge_cost: float = DEFAULT_EDGE_COST,
               flatten: float = DEFAULT_FLATTEN, smooth: float = DEFAULT_SMOOTH, sharpness: float = DEFAULT_SHARPNESS,
               edge_square: float = DEFAULT_EDGE_SQUARE) -> np.ndarray:
        if not k:
            return np.asarray(_finish(self.prepared, self.ab, 1.0))
        marks, distance = self._geometry(edge_cost, smooth, edge_square)
        pieces = zip(marks[:k].split(CHUNK), distance[:k].split(CHUNK), self.targets[:k].split(CHUNK))
        return np.asarray(_finish(self.prepared, self.ab + combine(self.ab, pieces, reach, flatten, sharpness), 1.0))


def locality(lab0: torch.Tensor, lab1: torch.Tensor, hint: dict) -> tuple[float, float]:
    """(mean CIEDE2000 of the PATCH x PATCH patch around ``hint`` from its colour at the result's
    own lightness, share of pixels moved by more than MOVED_DE) of a one-hint result ``lab1``
    beside the hint-free ``lab0`` (both (1, 3, H, W) Lab)."""
    moved = (ciede2000_map(lab0, lab1) > MOVED_DE).float().mean().item()
    target_ab = rgb_to_lab(torch.tensor(hint["color"], dtype=torch.float32).view(1, 3, 1, 1) / 255.0)[:, 1:]
    half = PATCH // 2
    y, x = hint["y"], hint["x"]
    patch = lab1[:, :, max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1]
    target = torch.cat([patch[:, :1], target_ab.expand(-1, -1, *patch.shape[2:])], dim=1)
    return ciede2000_map(patch, target).mean().item(), moved


def tune(files: list[Path], model, size: int, grid: dict, ks=(1, 10, 50)) -> None:
    """CIEDE2000 at k = 0 and ``ks`` and the one-hint locality for every combination of ``grid``
    (the network runs once per photo; no pooled metrics)."""
    configs = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    colorizer = Colorizer(model, size)
    rows = [{"de": {k: [] for k in (0, *ks)}, "patch": [], "moved": []} for _ in configs]
    for index, file in enumerate(files):
        reference = to_array(load_image(file).rgb)
        hints = simulated_hints(reference, max(ks), seed=index)
        colorizer.predict(gray_of(reference), hints)
        truth = rgb_to_lab(to_tensor(reference))
        lab0 = rgb_to_lab(to_tensor(colorizer.result(0)))
        de0 = ciede2000_map(lab0, truth).mean().item()
        for config, row in zip(configs, rows):
            row["de"][0].append(de0)
            for k in ks:
                lab = rgb_to_lab(to_tensor(colorizer.result(k, **config)))
                row["de"][k].append(ciede2000_map(lab, truth).mean().item())
                if k == 1:
                    one_patch, one_moved = locality(lab0, lab, hints[0])
                    row["patch"].append(one_patch)
                    row["moved"].append(one_moved)
        print(f"  {index + 1}/{len(files)} photos", file=sys.stderr, flush=True)
    print(f"tuned on {len(files)} photos; CIEDE2000 at k = 0, {', '.join(map(str, ks))}; one point's patch CIEDE2000 and moved share")
    for config, row in zip(configs, rows):
        cells = " ".join(f"{np.mean(row['de'][k]):6.2f}" for k in (0, *ks))
        print(f"{json.dumps(config):60s} {cells}  patch {np.mean(row['patch']):5.2f}  moved {np.mean(row['moved']):.3f} "
              f"(p90 {np.percentile(row['moved'], 90):.3f})", flush=True)


def gray_of(reference: np.ndarray) -> np.ndarray:
    """The colour photo (H, W, 3) uint8 made gray exactly as `colorgan evaluate` does (8-bit)."""
    return to_array(gray_baseline(torch.from_numpy(reference).permute(2, 0, 1).float() / 255.0))


class Scores:
    """One cell of a table (a way of giving hints, at one k): PSNR and CIEDE2000 of each photo,
    and the colour statistics pooled over the set."""

    def __init__(self) -> None:
        self.psnr: list[float] = []
        self.ciede2000: list[float] = []
        self.pooled = PooledColorStats()

    def add(self, output: np.ndarray, truth: torch.Tensor, lab_truth: torch.Tensor) -> torch.Tensor:
        """Score one result (H, W, 3) uint8 against its truth; its Lab (1, 3, H, W) back."""
        prediction = to_tensor(output)
        # The package's metrics, each image converted to Lab once (ciede2000() and add_rgb() would convert it again).
        lab_pred = rgb_to_lab(prediction)
        self.psnr.append(psnr(prediction, truth).item())
        self.ciede2000.append(ciede2000_map(lab_pred, lab_truth).mean().item())
        self.pooled.add(lab_pred, lab_truth)
        return lab_pred

    def summary(self, k: int) -> dict:
        pooled = self.pooled.result()
        return {"k": k, "psnr": float(np.mean(self.psnr)), "ciede2000": float(np.mean(self.ciede2000)),
                "hue_recall": pooled["hue_recall"], "hue_recall_classes": {c: pooled[f"hue_recall_{c}"] for c in HUE_CLASSES},
                "hue_precision": pooled["hue_precision"], "ab_hist": pooled["ab_hist"]}


def run_set(files: list[Path], model, size: int, ks=KS, progress: bool = True) -> dict:
    colorizer = Colorizer(model, size)
    per_k = {k: Scores() for k in ks}
    patch_de, moved = [], []
    for index, file in enumerate(files):
        reference = to_array(load_image(file).rgb)
        gray = gray_of(reference)
        all_hints = simulated_hints(reference, max(ks), seed=index)
        colorizer.predict(gray, all_hints)
        truth = to_tensor(reference)
        lab_truth = rgb_to_lab(truth)
        outputs, labs = {}, {}
        for k in ks:
            outputs[k] = colorizer.result(k)
            labs[k] = per_k[k].add(outputs[k], truth, lab_truth)
        if index == 0:  # the shortcut above is what colorize(hints=) gives, to float rounding (one 8-bit level)
            for k in ks:
                direct = np.asarray(colorize(gray, model, size=size, hints=all_hints[:k])).astype(int)
                assert np.abs(direct - outputs[k]).max() <= 1, f"bench path differs from colorize(hints=) at k={k}"
        if 0 in ks and 1 in ks:
            one_patch, one_moved = locality(labs[0], labs[1], all_hints[0])
            patch_de.append(one_patch)
            moved.append(one_moved)
        if progress and (index + 1) % 20 == 0:
            print(f"  {index + 1}/{len(files)} photos", file=sys.stderr, flush=True)
    table = [{key: row[key] for key in ("k", "psnr", "ciede2000", "hue_recall")} for row in (per_k[k].summary(k) for k in ks)]
    result = {"images": len(files), "table": table}
    if patch_de:
        result["locality"] = {
            "patch_ciede2000_mean": float(np.mean(patch_de)), "patch_ciede2000_median": float(np.median(patch_de)),
            "patch_within_3_share": float(np.mean(np.array(patch_de) <= 3.0)),
            "moved_share_mean": float(np.mean(moved)), "moved_share_median": float(np.median(moved)),
            "moved_share_p90": float(np.percentile(moved, 90)), "moved_under_30pct_share": float(np.mean(np.array(moved) < 0.30)),
        }
    return result


def run_suggest(files: list[Path], model, size: int, ks=SUGGEST_KS, progress: bool = True) -> dict:
    """k point hints at the spots ``suggest_hints`` gives against k at random spots (the
    k-table's), each with the truth's colour there: PSNR, CIEDE2000 and hue recall as above."""
    colorizer = Colorizer(model, size)
    rows = {name: {k: Scores() for k in ks} for name in ("random", "suggested")}
    for index, file in enumerate(files):
        reference = to_array(load_image(file).rgb)
        gray = gray_of(reference)
        truth = to_tensor(reference)
        lab_truth = rgb_to_lab(truth)
        given = {"random": simulated_hints(reference, max(ks), seed=index),
                 "suggested": hints_at(reference, suggest_hints(gray, model, max(ks), size=size))}
        for name, hints in given.items():
            colorizer.predict(gray, hints)
            for k in ks:
                rows[name][k].add(colorizer.result(k), truth, lab_truth)
        if progress and (index + 1) % 20 == 0:
            print(f"  {index + 1}/{len(files)} photos", file=sys.stderr, flush=True)
    return {"images": len(files), **{name: [cell.summary(k) for k, cell in by_k.items()] for name, by_k in rows.items()}}


def classes(row: dict) -> str:
    """Per-class hue recall as r/y/g/b/p percentages, as `colorgan evaluate` prints it."""
    return "/".join(f"{100 * row['hue_recall_classes'][c]:.0f}" for c in HUE_CLASSES)


def print_suggest(result: dict) -> None:
    print(f"{result['images']} photos; PSNR dB / CIEDE2000 / hue recall (r/y/g/b/p %) / hue precision / ab hist")
    print(f"{'k':>3}  {'random spots':>52}  {'suggested spots':>52}")
    for random_row, suggested in zip(result["random"], result["suggested"]):
        cells = [f"{r['psnr']:.2f} / {r['ciede2000']:.2f} / {r['hue_recall']:.3f} ({classes(r)}) / {r['hue_precision']:.3f} / "
                 f"{r['ab_hist']:.3f}" for r in (random_row, suggested)]
        print(f"{random_row['k']:>3}  {cells[0]:>52}  {cells[1]:>52}")


def timing(model, repeats: int = 5) -> dict:
    photo = sorted(DEFAULT_DATA.glob("*.jpg"))[0] if DEFAULT_DATA.is_dir() else ROOT / "tests" / "data" / "bsds_12003.jpg"
    image = Image.open(photo).convert("RGB")
    scale = (1_000_000 / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "photo_1mp.jpg"
        image.save(path, quality=95)
        hints = simulated_hints(np.asarray(image), 20, seed=0)
        rows = {}
        for name, given in (("no hints", None), ("20 points", hints)):
            colorize(path, model, hints=given)  # warm-up
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                colorize(path, model, hints=given)
                seconds.append(time.perf_counter() - start)
            rows[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds)}
    import os

    return {"load_average_1min": os.getloadavg()[0], "photo": f"{photo.name} enlarged to {image.width}x{image.height} ({image.width * image.height / 1e6:.2f} MP), JPEG q95",
            "threads": torch.get_num_threads(), "repeats": repeats, "rows": rows}


def print_table(result: dict) -> None:
    print(f"{result['images']} photos")
    print(f"{'k':>3}  {'PSNR dB':>8}  {'CIEDE2000':>9}  {'hue recall':>10}")
    for row in result["table"]:
        print(f"{row['k']:>3}  {row['psnr']:>8.2f}  {row['ciede2000']:>9.2f}  {row['hue_recall']:>10.3f}")


def card_section(results: dict) -> str:
    """The model card's "Colour hints" section (``colorgan card --section``) from the measured figures."""
    table, loc = results["table"], results["table"]["locality"]
    lines = [
        "## Colour hints",
        "",
        "`colorize(photo, hints=[...])` (and `colorgan colorize --hints`, and the demo's brush) takes points, strokes or",
        "masks of known colours and spreads their chroma over the region each belongs to (geodesic distance over the",
        "lightness, on top of this model's prediction; no retraining). Measured by `python bench/hints.py` on",
        f"{Path(table['data']).name} ({table['images']} photos, working size {table['size']}): k points at random positions,",
        "each given the true colour averaged over its 5x5 patch.",
        "",
        "| hints k | PSNR dB | CIEDE2000 | hue recall |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {row['k']} | {row['psnr']:.2f} | {row['ciede2000']:.2f} | {row['hue_recall']:.3f} |" for row in table["table"]]
    lines += [
        "",
        f"One point: the 15x15 patch around it is on average {loc['patch_ciede2000_mean']:.2f} CIEDE2000 from the hint's colour",
        f"(at the photo's own lightness; {loc['patch_within_3_share']:.0%} of photos within 3), and it moves "
        f"{loc['moved_share_mean']:.1%} of the photo by more than 2 units on average",
        f"(90th percentile {loc['moved_share_p90']:.1%}).",
    ]
    if "suggest" in results:
        suggest = results["suggest"]
        lines += ["", "Where to give them: `suggest_hints(photo, model, k)` (`colorgan suggest-hints`, the demo's \"Where should I",
                  "paint?\") names k spots, each the centre of a large region of even lightness where this model's two networks",
                  "disagree most and the earlier spots' hints do not reach. The same protocol, k points at the suggested spots",
                  f"against k at random ones (`python bench/hints.py --parts suggest`, {suggest['images']} photos), PSNR dB /",
                  "CIEDE2000 / hue recall:", "", "| hints k | random spots | suggested spots |", "| --- | --- | --- |"]
        lines += [f"| {r['k']} | {r['psnr']:.2f} / {r['ciede2000']:.2f} / {r['hue_recall']:.3f} | "
                  f"{g['psnr']:.2f} / {g['ciede2000']:.2f} / {g['hue_recall']:.3f} |"
                  for r, g in zip(suggest["random"], suggest["suggested"])]
    if "timing" in results:
        timing = results["timing"]
        rows = timing["rows"]
        lines += ["", f"Time (`runs/quiet.sh python bench/hints.py --parts timing`): a 1-megapixel JPEG with 20 point hints, "
                      f"{rows['20 points']['median_s']:.2f} s median, best {rows['20 points']['min_s']:.2f} s "
                      f"({rows['no hints']['median_s']:.2f} s and {rows['no hints']['min_s']:.2f} s without hints), decode included, "
                      f"{timing['threads']} CPU threads (1-minute load average {timing.get('load_average_1min', float('nan')):.1f} "
                      "when it ran)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="A folder of colour photos.")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N photos (sorted).")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--parts", default="table,timing",
                        help="table (the k-table and locality), suggest (suggested spots against random ones), timing.")
    parser.add_argument("--json", default=str(ROOT / "bench" / "hints.json"), help="Where to write the figures (merged).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs of each timing case (median and best reported).")
    parser.add_argument("--card-section", default=str(ROOT / "docs" / "cards" / "hints.md"),
                        help="Where to write the model card's Colour hints section (colorgan card --section); '' for none.")
    parser.add_argument("--tune", action="store_true", help="Grid over the propagation parameters (use training photos).")
    parser.add_argument("--grid", default='{"reach": [0.15, 0.25, 0.4], "edge_cost": [1.0, 2.0, 4.0], "flatten": [0.0, 1.0]}',
                        help="--tune: JSON of the values tried for each of reach, edge_cost, flatten.")
    args = parser.parse_args()
    model = load_default()
    files = find_images(args.data)[: args.limit]
    if args.tune:
        tune(files, model, args.size, json.loads(args.grid))
        return
    out = Path(args.json)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update({"torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")})
    parts = set(args.parts.split(","))
    if "table" in parts:
        print(f"k-table on {args.data} (working size {args.size}, shipped default model)", flush=True)
        result = run_set(files, model, args.size)
        results["table"] = {"data": args.data, "size": args.size, **result}
        print_table(result)
        loc = result["locality"]
        print(f"one point: 15x15 patch vs hint colour, mean CIEDE2000 {loc['patch_ciede2000_mean']:.2f} "
              f"(median {loc['patch_ciede2000_median']:.2f}; {loc['patch_within_3_share']:.0%} of photos within 3)")
        print(f"one point: share of the photo moved by > {MOVED_DE:g} units, mean {loc['moved_share_mean']:.1%} "
              f"(median {loc['moved_share_median']:.1%}, 90th percentile {loc['moved_share_p90']:.1%}; "
              f"{loc['moved_under_30pct_share']:.0%} of photos under 30%)")
    if "suggest" in parts:
        print(f"suggested spots on {args.data} (working size {args.size}, shipped default model)", flush=True)
        result = run_suggest(files, model, args.size)
        results["suggest"] = {"data": args.data, "size": args.size, **result}
        print_suggest(result)
    if "timing" in parts:
        result = timing(model, args.repeats)
        results["timing"] = result
        print(f"timing: {result['photo']}, {result['threads']} threads, median of {result['repeats']}; "
              f"load average {result['load_average_1min']:.1f} (other work on the machine)")
        for name, row in result["rows"].items():
            print(f"  {name:>9}: {row['median_s']:.3f} s (min {row['min_s']:.3f} s)")
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    if "table" in results and args.card_section:
        Path(args.card_section).write_text(card_section(results))
        print(f"wrote {args.card_section}")


if __name__ == "__main__":
    main()

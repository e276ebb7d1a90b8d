"""The paper's Table 1, Table 2 and loss curves (its figures 6 and 7) from a `--preset paper` run, beside the paper's.

    python train/paper_report.py --run runs/paper-repro --data pairs/paper120 -o docs/paper_reproduction

Reads the run's history (the newest of `history.json` and its checkpoints' copies), scores
the run's generator on the pair set's test split in batches of 64 as the paper's Table 2
does (the raw RGB output against the true RGB, so the same MSE the generator trains on), and
writes `<output>.md` (both tables, the paper's figures quoted as the paper's), `<output>.json`
and `<output>_curves.png`. Nothing here is typed in except the paper's own figures.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from colorgan_hf import ColorGenerator
from colorgan_hf.files import atomic_path, write_atomic
from colorgan_hf.training import HISTORY_FILE, epoch_means, evaluate_generator, latest_checkpoint, make_loaders

logger = logging.getLogger("colorgan_hf.paper_report")

# Quoted from the paper (Demirel & Yuce), Table 1: epoch -> (generator MSE, discriminator BCE).
PAPER_TABLE1 = {20: (0.0075, 0.9756), 50: (0.0062, 0.6844), 100: (0.0056, 0.4423), 150: (0.0052, 0.4255),
                250: (0.0037, 0.4087), 500: (0.0024, 0.3935), 750: (0.0015, 0.3980), 1000: (0.0013, 0.4002)}
# Its Table 2: test MSE per batch of 64 and the weighted mean.
PAPER_TABLE2 = [0.00231, 0.00279, 0.00266, 0.00280, 0.00383]
PAPER_TABLE2_MEAN = 0.00281
# Our own early epochs are shown too (by default), so a run that has not reached epoch 20 still has a table.
EARLY_EPOCHS = (1, 2, 5, 10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="The output folder of a `train/train.py --preset paper` run.")
    parser.add_argument("--data", required=True, help="The pair set it trained on (`colorgan build-dataset` output); its test split is scored.")
    parser.add_argument("--generator", action="append", default=None, metavar="LABEL=FOLDER",
                        help="A generator to score for Table 2, as LABEL=FOLDER (its column is headed 'ours, LABEL'); "
                             "repeat for several (default: the run's own RUN/generator).")
    parser.add_argument("--epochs", type=int, nargs="+", default=list(EARLY_EPOCHS),
                        help="Our epochs shown in Table 1 besides the paper's and the last one reached (default: 1 2 5 10).")
    parser.add_argument("--batch_size", type=int, default=64, help="Test batch size (the paper's 64).")
    parser.add_argument("--hardware", default="this machine's CPU", help="Where the run trained, for the report's header.")
    parser.add_argument("-o", "--output", required=True, help="Output path without extension: writes .md, .json and _curves.png.")
    return parser.parse_args(argv)


def read_history(run: Path) -> list[dict]:
    """The longest history the run has: its final ``history.json`` or the newest complete checkpoint's copy."""
    candidates = [run / HISTORY_FILE]
    checkpoint, _ = latest_checkpoint(run)
    if checkpoint is not None:
        candidates.append(checkpoint / HISTORY_FILE)
    histories = [json.loads(path.read_text()) for path in candidates if path.is_file()]
    if not histories:
        raise SystemExit(f"{run}: no history.json in the run or its checkpoints")
    return max(histories, key=lambda h: max((row.get("step", 0) for row in h), default=0))


def epoch_rows(history: list[dict]) -> dict[int, dict]:
    """Epoch number (1-based, as the paper counts) -> that epoch's mean generator MSE and discriminator BCE.

    Only whole epochs: the parts of an epoch split by resumes are pooled (:func:`epoch_means`);
    an epoch the run left unfinished is not a row of Table 1.
    """
    means = epoch_means(history)
    steps_per_epoch = means[0]["step"] if 0 in means else None
    return {epoch + 1: {"generator_mse": row["g_pixel"], "discriminator_bce": row["d_loss"] or None, "step": row["step"]}
            for epoch, row in means.items()
            if steps_per_epoch and row["steps"] == steps_per_epoch and row["step"] == (epoch + 1) * steps_per_epoch}


def table1(epochs: dict[int, dict], early: tuple[int, ...] = EARLY_EPOCHS) -> tuple[list[dict], str]:
    reached = max(epochs, default=0)
    shown = sorted({e for e in early if e in epochs} | set(PAPER_TABLE1) | ({reached} if reached else set()))
    rows, lines = [], ["| epoch | paper: generator MSE | ours: generator MSE | paper: discriminator BCE | ours: discriminator BCE |",
                       "| ---: | ---: | ---: | ---: | ---: |"]
    for epoch in shown:
        paper = PAPER_TABLE1.get(epoch)
        ours = epochs.get(epoch)
        rows.append({"epoch": epoch, "paper": paper, "ours": ours})
        paper_g, paper_d = (f"{paper[0]:.4f}", f"{paper[1]:.4f}") if paper else ("", "")
        ours_g, ours_d = (f"{ours['generator_mse']:.4f}", f"{ours['discriminator_bce']:.4f}") if ours else ("not reached", "not reached")
        lines.append(f"| {epoch} | {paper_g} | {ours_g} | {paper_d} | {ours_d} |")
    return rows, "\n".join(lines)


def table2(scores: dict[str, tuple[list[float], float]]) -> str:
    """The paper's Table 2 beside ours: ``scores`` maps a column label (None: "ours") to (MSE per batch, weighted mean)."""
    labels = [f"ours, {label}" if label else "ours" for label in scores]
    lines = ["| test batch (64 photos) | paper: MSE | " + " | ".join(f"{label}: MSE" for label in labels) + " |",
             "| --- | ---: |" + " ---: |" * len(labels)]
    batches = max([len(PAPER_TABLE2)] + [len(per_batch) for per_batch, _ in scores.values()])
    for i in range(batches):
        paper = f"{PAPER_TABLE2[i]:.5f}" if i < len(PAPER_TABLE2) else ""
        ours = [f"{per_batch[i]:.5f}" if i < len(per_batch) else "" for per_batch, _ in scores.values()]
        lines.append(f"| batch {i + 1} | {paper} | " + " | ".join(ours) + " |")
    lines.append(f"| weighted mean | {PAPER_TABLE2_MEAN:.5f} | " + " | ".join(f"{mean:.5f}" for _, mean in scores.values()) + " |")
    return "\n".join(lines)


def score_test_split(generator_dirs: dict[str | None, Path], data: str, batch_size: int) -> tuple[dict, int]:
    """Each generator's test MSE per batch and weighted mean (label -> (per batch, mean)), and the test split's size."""
    import datasets
    from accelerate import Accelerator

    pairs = datasets.load_from_disk(data)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    loaders: dict[int, Any] = {}  # by the generators' input size
    scores = {}
    for label, folder in generator_dirs.items():
        generator = accelerator.prepare(ColorGenerator.from_pretrained(folder))
        size = accelerator.unwrap_model(generator).net.input_size
        if size not in loaders:
            loaders[size] = accelerator.prepare(make_loaders(pairs, size, batch_size)[1])
        with torch.no_grad():
            scores[label] = evaluate_generator(generator, loaders[size], "mse", accelerator)[:2]
    return scores, len(pairs["test"])


def save_curves(epochs: dict[int, dict], path: Path) -> None:
    """Figures 6 and 7: generator MSE and discriminator BCE per epoch, the paper's Table 1 points beside ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = sorted(epochs)
    for ax, key, index, title in ((axes[0], "generator_mse", 0, "generator loss (MSE), figure 6"),
                                  (axes[1], "discriminator_bce", 1, "discriminator loss (BCE), figure 7")):
        ax.plot(x, [epochs[e][key] for e in x], label="ours (mean over each epoch)")
        ax.plot(list(PAPER_TABLE1), [v[index] for v in PAPER_TABLE1.values()], "o--", label="paper, Table 1")
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(args: argparse.Namespace) -> dict:
    run = Path(args.run)
    epochs = epoch_rows(read_history(run))
    rows, t1 = table1(epochs, tuple(args.epochs))
    generators: dict[str | None, Path] = {None: run / "generator"}
    if args.generator:
        generators = {}
        for item in args.generator:
            label, sep, folder = item.partition("=")
            if not sep or not label or not folder:
                raise SystemExit(f"--generator takes LABEL=FOLDER, got {item!r}")
            generators[label] = Path(folder)
    scores, test_count = score_test_split(generators, args.data, args.batch_size)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    reached = max(epochs, default=0)
    report = {"epochs_reached": reached, "steps": max((e["step"] for e in epochs.values()), default=0), "hardware": args.hardware,
              "table1": rows,
              "table2": {"test_photos": test_count, "generators": {label or "ours": {"folder": str(generators[label]), "per_batch": per_batch,
                                                                                  "weighted_mean": mean}
                                                                   for label, (per_batch, mean) in scores.items()}},
              "paper_table2": {"per_batch": PAPER_TABLE2, "weighted_mean": PAPER_TABLE2_MEAN}}
    markdown = "\n".join([
        f"Epochs reached: {reached} of the paper's ~1,000 ({report['steps']} steps of batch 64), on {args.hardware}.",
        "",
        "Table 1: generator and discriminator losses during training (ours: the mean over each epoch's steps; "
        "the paper's figures quoted from its Table 1).",
        "",
        t1,
        "",
        f"Table 2: generator MSE on the test split ({test_count} photos, RGB in [0, 1], the generator's raw 120x120 output; "
        "the paper's figures quoted from its Table 2).",
        "",
        table2(scores),
        "",
    ])
    write_atomic(out.with_suffix(".md"), markdown)
    write_atomic(out.with_suffix(".json"), json.dumps(report, indent=1))
    save_curves(epochs, out.with_name(out.name + "_curves.png"))
    print(markdown)
    return report


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    main(parse_args())

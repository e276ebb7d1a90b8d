"""What the training tests share: train/train.py imported as a module, tiny flags, a run helper."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import train as train_script  # noqa: E402

TRAIN_PY = ROOT / "train" / "train.py"
PHOTOS_DIR = ROOT / "tests" / "data"
# Tiny networks and batches: each step takes a fraction of a second on a CPU.
TINY = ["--gen_base_channels", "8", "--disc_base_channels", "8", "--train_batch_size", "2", "--report_to", "none",
        "--rebalance_batches", "2", "--max_eval_samples", "2"]


def run(argv: list[str]) -> dict:
    """``train.py`` in this process: ``main(parse_args(argv))``."""
    return train_script.main(train_script.parse_args(argv))

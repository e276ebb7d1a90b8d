"""The models shipped inside the package, and one way to get a generator from any reference to one."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelLoadError
from .models import ColorGenerator

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_MODELS = ("default", "fast", "vivid", "paper")


def shipped_models() -> list[str]:
    """The shipped names whose weights are in this installation."""
    return [name for name in SHIPPED_MODELS if (WEIGHTS_DIR / name / "model.safetensors").is_file()]


def load_default(name: str = "default") -> ColorGenerator:
    """Load a generator shipped inside the package (no network needed).

    Args:
        name: ``"default"`` (our recipe: a pair of U-Nets), ``"fast"`` (the pair's first
            U-Net alone, a quarter of the time), ``"vivid"`` (the pair's second, wider U-Net alone,
            two-thirds of the pair's FLOPs, bolder colours: the video default) or ``"paper"`` (the paper's network).
    """
    if name not in SHIPPED_MODELS:
        raise ModelLoadError(f"unknown shipped model {name!r}: expected one of {', '.join(SHIPPED_MODELS)}")
    path = WEIGHTS_DIR / name
    if name not in shipped_models():
        raise ModelLoadError(f"{path}: the shipped {name!r} model is not in this installation")
    return ColorGenerator.from_pretrained(path).eval()


def load_model(model: str | os.PathLike | ColorGenerator | None) -> ColorGenerator:
    """A generator from itself, a shipped name (see :data:`SHIPPED_MODELS`), a local folder or a Hub id."""
    if model is None:
        return load_default()
    if isinstance(model, ColorGenerator):
        return model
    if str(model) in SHIPPED_MODELS:
        return load_default(str(model))
    return ColorGenerator.from_pretrained(model).eval()


# What a training run (train/train.py) writes beside its generator/: the logged history and the
# validation grids, samples/step-NNNNNNN.png. The card, push and training all read these names here.
HISTORY_FILE = "history.json"
SAMPLES_DIR = "samples"
SAMPLE_NAME = "step-{step:07d}.png"
SAMPLE_PATTERN = re.compile(r"step-(\d+)\.png")


def run_generator(model: str | None) -> str | None:
    """A training run's folder (holding generator/) stands for its generator; anything else is returned as it is."""
    if model and not (Path(model) / "config.json").is_file() and (Path(model) / "generator" / "config.json").is_file():
        return str(Path(model) / "generator")
    return model


def model_key(model: str | os.PathLike | None) -> str:
    """One name per model however it is spelled, to find a model's row in an evaluation table.

    As :func:`load_model` reads them: None and a shipped name (before any folder of that name) as
    the shipped folder, a folder (a training run's as its generator/) by its absolute path, anything
    else (a Hub id) as it is.
    """
    name = "default" if model is None else str(model)
    folder = WEIGHTS_DIR / name if name in SHIPPED_MODELS else Path(run_generator(name))
    return str(folder.resolve()) if folder.is_dir() else name

"""Shared fixtures: real photos from tests/data and tiny networks."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from PIL import Image

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(DATA.glob("*.jpg"))


@pytest.fixture(autouse=True)
def _threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def photo_paths() -> list[Path]:
    return PHOTOS


@pytest.fixture
def photo() -> Image.Image:
    return Image.open(PHOTOS[0]).convert("RGB")


@pytest.fixture(scope="session")
def tiny_unet():
    from colorgan_hf import ColorGenerator

    torch.manual_seed(0)
    return ColorGenerator(architecture="unet", base_channels=8, depth=3).eval()


@pytest.fixture(scope="session")
def tiny_paper():
    from colorgan_hf import ColorGenerator

    torch.manual_seed(0)
    return ColorGenerator(architecture="paper", base_channels=4).eval()


@pytest.fixture(scope="session")
def train_image_dir(tmp_path_factory):
    """12 real photos for training tests: the four of tests/data, mirrored and flipped."""
    from PIL import ImageOps

    root = tmp_path_factory.mktemp("train_photos")
    for i, path in enumerate(PHOTOS):
        image = Image.open(path).convert("RGB")
        image.save(root / f"{i}.jpg")
        ImageOps.mirror(image).save(root / f"{i}_m.jpg")
        ImageOps.flip(image).save(root / f"{i}_f.jpg")
    return root


@pytest.fixture(scope="session")
def train_pair_dir(train_image_dir, tmp_path_factory):
    """Those photos as a saved pair set (short side 64, 20% test)."""
    from colorgan_hf.data import build_pair_dataset

    pairs, _ = build_pair_dataset([str(train_image_dir)], size=64, test_fraction=0.2, seed=0)
    out = tmp_path_factory.mktemp("train_pairs") / "pairs"
    pairs.save_to_disk(str(out))
    return out

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

"""``colorgan space-export DIR``: write a self-contained, deployable Hugging Face Space.

A Space is a git repository that Hugging Face builds from its ``requirements.txt`` and runs
as ``python app.py``; it has no repository above it and ``colorgan-hf`` is on no package
index. So the export carries everything: the demo (``app.py`` and its examples), this
package vendored as a plain folder beside it (the code and the shipped weights), a
``README.md`` with the Space's front matter, and a ``requirements.txt`` whose every line is
a PyPI package pinned to the version this installation runs.

    colorgan space-export my-space/
    cd my-space && python -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python app.py
"""

from __future__ import annotations

import re
import shutil
from importlib import metadata
from pathlib import Path

from .errors import ColorGANError
from .registry import shipped_models

PACKAGE_DIR = Path(__file__).resolve().parent
# The demo's sources: space/ beside the package in a checkout or an editable install.
SPACE_DIR = PACKAGE_DIR.parent / "space"
# What the app imports at run time (the package's core dependencies and the demo's). The
# training, evaluation and card modules are vendored too but never imported by the app.
RUNTIME_REQUIREMENTS = ("torch", "huggingface_hub", "safetensors", "pillow", "numpy", "kornia", "tqdm", "gradio",
                        "av", "opencv-python-headless")  # the last two: the Video tab
# Vendored: the package's code and data, without caches or anything the app cannot use.
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", "*.egg-info", ".*")
_LFS_PATTERNS = ("*.safetensors", "*.png", "*.jpg", "*.jpeg", "*.zip")


def pinned_requirements() -> list[str]:
    """``name==version`` for each runtime requirement, as installed here (local build tags
    such as ``+cpu`` dropped: the plain version is the one on PyPI)."""
    lines = []
    for name in RUNTIME_REQUIREMENTS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ColorGANError(f"{name} is not installed: install the space extra first (pip install -e '.[space]')") from None
        lines.append(f"{name}=={version.split('+')[0]}")
    return lines


def _front_matter_readme(source: Path, gradio_version: str) -> str:
    text = source.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ColorGANError(f"{source}: no Space front matter (a block between --- lines) at the top")
    text = re.sub(r"(?m)^sdk_version:.*$", f"sdk_version: {gradio_version}", text, count=1)
    return text.replace("Local run, from the repository root: `python space/app.py`",
                        "Local run, from this folder: `pip install -r requirements.txt && python app.py`")


def export_space(target: str | Path, overwrite: bool = False) -> Path:
    """Write the Space into ``target`` (created; an existing non-empty folder only with ``overwrite``)."""
    target = Path(target)
    if not (SPACE_DIR / "app.py").is_file():
        raise ColorGANError(f"the demo's sources are not at {SPACE_DIR}: run space-export from a checkout of colorgan-hf "
                            "(or an editable install of one)")
    if target.exists() and any(target.iterdir()):
        if not overwrite:
            raise ColorGANError(f"{target} exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(target)
    missing = [name for name in ("default",) if name not in shipped_models()]
    if missing:
        raise ColorGANError(f"the shipped {missing[0]!r} weights are not in this installation")
    requirements = pinned_requirements()
    gradio_version = next(line.split("==")[1] for line in requirements if line.startswith("gradio=="))
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SPACE_DIR / "app.py", target / "app.py")
    shutil.copytree(SPACE_DIR / "examples", target / "examples", ignore=_SKIP)
    shutil.copytree(PACKAGE_DIR, target / "colorgan_hf", ignore=_SKIP)
    (target / "README.md").write_text(_front_matter_readme(SPACE_DIR / "README.md", gradio_version), encoding="utf-8")
    (target / "requirements.txt").write_text(
        "# Every line resolves from PyPI; colorgan_hf itself is the folder beside app.py.\n" + "\n".join(requirements) + "\n",
        encoding="utf-8")
    (target / ".gitattributes").write_text("".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in _LFS_PATTERNS),
                                           encoding="utf-8")
    return target

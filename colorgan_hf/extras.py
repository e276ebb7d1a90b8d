"""The optional extras of pyproject.toml, and the one message for a feature whose extra is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# Each optional module the package imports -> (the smallest extra that brings it, its name on PyPI).
# Kept in step with [project.optional-dependencies] in pyproject.toml.
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "av": ("video", "av"),
    "cv2": ("video", "opencv-python-headless"),
    "accelerate": ("archive", "accelerate"),
    "datasets": ("archive", "datasets"),
    "evaluate": ("train", "evaluate"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnx", "onnxruntime"),
}


def missing_extra(feature: str, module: str | None) -> MissingExtraError | None:
    """The error to raise when ``feature`` could not import ``module`` (or one of its submodules):
    it names the extra to install. None when no extra brings that module (a real bug, not an install)."""
    known = OPTIONAL_MODULES.get((module or "").split(".")[0])
    if known is None:
        return None
    extra, package = known
    return MissingExtraError(f'{feature} needs {package}, which is not installed: pip install "colorgan-hf[{extra}]" '
                             f"(or: pip install {package})")


def require(module: str, feature: str) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` saying which extra ``feature`` needs."""
    try:
        return importlib.import_module(module)
    except ImportError:
        error = missing_extra(feature, module)
        if error is None:
            raise
        raise error from None

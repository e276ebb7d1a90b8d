"""ONNX: export a generator's colour prediction, and run it with onnxruntime inside :func:`colorize`.

Only the network goes to ONNX (lightness at the working resolution in, a*b* out); reading
the photo, the full-resolution recombination and writing stay the package's own, so an
ONNX run gives the same photo as PyTorch, within one 8-bit level.

    colorgan export-onnx -o colorgan-default.onnx              # the shipped default model
    colorgan colorize photo.jpg -o out/ --model colorgan-default.onnx

``pip install -e ".[onnx]"`` brings onnx (for the export) and onnxruntime (to run it).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelLoadError
from .extras import require
from .files import atomic_path

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "l", "ab"


class _PredictAB(nn.Module):
    """The generator's :meth:`predict_ab` as a module's forward, for the exporter."""

    def __init__(self, generator, vividness: float | None) -> None:
        super().__init__()
        self.generator, self.vividness = generator, vividness

    def forward(self, l_channel: torch.Tensor) -> torch.Tensor:
        return self.generator.predict_ab(l_channel, self.vividness)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def export_onnx(model, path: str | os.PathLike, *, vividness: float | None = None) -> Path:
    """Write ``model`` (anything :func:`colorgan_hf.load_model` takes) to ``path`` as ONNX, with
    ``PATH.json`` beside it (stride, fixed input size, vividness). Batch, height and width are
    dynamic for networks that take any size."""
    from .pipeline import warn_if_vividness_ignored
    from .registry import load_model

    require("onnx", "the ONNX export")  # torch's exporter needs it, and says so only after tracing
    generator = load_model(model)
    warn_if_vividness_ignored(generator, vividness, None if model is None else str(model))
    path = Path(path)
    size = generator.input_size or 4 * generator.stride
    dummy = torch.full((1, 1, size, size), 50.0)
    dynamic = None
    if generator.input_size is None:
        dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    module = _PredictAB(generator, vividness).eval()
    # The tracer warns about shape checks in kornia's colour conversions: they hold for every
    # input size (tests/test_onnx.py checks several against PyTorch).
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    info = {"stride": generator.stride, "input_size": generator.input_size, "vividness": vividness,
            "architecture": getattr(generator, "architecture", None)}
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return path


class OnnxGenerator:
    """A generator exported by :func:`export_onnx`, run by onnxruntime on the CPU; what
    :func:`colorize` needs of a :class:`ColorGenerator` (``stride``, ``input_size``,
    ``predict_ab``, ``disagreement``)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self._ort = require("onnxruntime", "an .onnx model")
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such ONNX file")
        try:
            info = json.loads(_sidecar(path).read_text())
        except (OSError, ValueError):
            raise ModelLoadError(f"{_sidecar(path)}: missing or unreadable (written by `colorgan export-onnx` beside the model)") from None
        self.path = path
        self.stride = int(info["stride"])
        self.input_size = info.get("input_size")
        self.vividness = info.get("vividness")
        self.threads = 0
        self.set_threads(threads or torch.get_num_threads())

    def set_threads(self, threads: int) -> None:
        """Run on ``threads`` threads (a new onnxruntime session if that changes)."""
        onnxruntime = self._ort
        if threads == self.threads:
            return
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types on a bad file
            raise ModelLoadError(f"{self.path}: not a readable ONNX model ({type(error).__name__}: {error})") from None
        self.threads = threads

    def predict_ab(self, l_channel: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        if vividness is not None and vividness != self.vividness:
            raise ValueError(f"{self.path} was exported with vividness {self.vividness}: export again with --vividness {vividness}")
        (ab,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(l_channel.cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(ab)

    def disagreement(self, l_channel: torch.Tensor) -> None:
        """An exported model is one network as far as the pipeline can see: no members to compare."""

    def __repr__(self) -> str:
        return f"OnnxGenerator({str(self.path)!r})"

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
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelLoadError, OptionError
from .extras import require
from .files import atomic_path, nearest_existing
from .pipeline import MAX_SIZE

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "l", "ab"
# The sidecar's keys, as export_onnx writes them; "stride" is the only one a model cannot do without.
SIDECAR_KEYS = ("stride", "input_size", "vividness", "architecture")


class _PredictAB(nn.Module):
    """The generator's :meth:`predict_ab` as a module's forward, for the exporter."""

    def __init__(self, generator, vividness: float | None) -> None:
        super().__init__()
        self.generator, self.vividness = generator, vividness

    def forward(self, l_channel: torch.Tensor) -> torch.Tensor:
        return self.generator.predict_ab(l_channel, self.vividness)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _check_export_path(path: Path) -> None:
    """Refuse, before the (slow) export, a path the model and its sidecar cannot be written to as
    ``NAME.onnx`` and ``NAME.onnx.json``: what ``colorize`` and the README expect."""
    if path.suffix.lower() != ".onnx":
        raise OptionError(f"{path}: an ONNX model's path must end in .onnx (its settings go beside it as "
                          f"NAME.onnx.json, and colorize() knows an ONNX model by the suffix): try {path}.onnx")
    existing = nearest_existing(path.parent)
    if existing is not None and not existing.is_dir():  # the folder to write in cannot be made
        raise OptionError(f"{path}: cannot be written: {existing} is a file, not a folder")
    for target in (path, _sidecar(path)):
        if target.is_dir():
            raise OptionError(f"{target}: is a folder: give the path of the .onnx file to write, such as {target / 'model.onnx'}"
                              if target == path else f"{target}: is a folder, where the model's settings file goes")


def export_onnx(model, path: str | os.PathLike, *, vividness: float | None = None) -> Path:
    """Write ``model`` (anything :func:`colorgan_hf.load_model` takes) to ``path`` as ONNX, with
    ``PATH.json`` beside it (stride, fixed input size, vividness). Batch, height and width are
    dynamic for networks that take any size.

    Raises:
        OptionError: ``path`` does not end in ``.onnx``, is a folder, or cannot be written
            (no permission, a parent that is a file, a full disk); nothing is left under its name.
    """
    from .pipeline import warn_if_vividness_ignored
    from .registry import load_model

    path = Path(path)
    _check_export_path(path)  # before loading or tracing anything
    require("onnx", "the ONNX export")  # torch's exporter needs it, and says so only after tracing
    generator = load_model(model)
    warn_if_vividness_ignored(generator, vividness, None if model is None else str(model))
    size = generator.input_size or 4 * generator.stride
    dummy = torch.full((1, 1, size, size), 50.0)
    dynamic = None
    if generator.input_size is None:
        dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    module = _PredictAB(generator, vividness).eval()
    info = {"stride": generator.stride, "input_size": generator.input_size, "vividness": vividness,
            "architecture": getattr(generator, "architecture", None)}
    sidecar_written = False
    try:
        # The tracer warns about shape checks in kornia's colour conversions: they hold for every
        # input size (tests/test_onnx.py checks several against PyTorch).
        with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
            # The sidecar goes first, the model last: a model under its name always has its settings.
            with atomic_path(_sidecar(path)) as side:
                side.write_text(json.dumps(info, indent=2))
            sidecar_written = True
    except OSError as error:  # the file system's refusal: a permission, a parent that is a file, a full disk
        if sidecar_written:  # the model's rename failed: its settings alone would describe nothing
            _sidecar(path).unlink(missing_ok=True)
        raise OptionError(f"{path}: cannot be written ({type(error).__name__}: {error.strerror or error})") from None
    return path


def _read_sidecar(path: Path) -> dict:
    """The settings export_onnx wrote beside ``path``, every key checked: a ModelLoadError naming the
    sidecar and the problem, never a KeyError at load or a ZeroDivisionError at the first photo."""
    sidecar = _sidecar(path)
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        raise ModelLoadError(f"{sidecar}: missing or unreadable (written by `colorgan export-onnx` beside the model)") from None

    def bad(problem: str) -> ModelLoadError:
        return ModelLoadError(f"{sidecar}: {problem} (export the model again with `colorgan export-onnx`)")

    if not isinstance(info, dict):
        raise bad(f"expected a JSON object, got {type(info).__name__}")
    unknown = sorted(set(info) - set(SIDECAR_KEYS))
    if unknown:  # as config.json's unknown keys are: a file meant for something else, or edited by hand
        raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(SIDECAR_KEYS)}")
    if "stride" not in info:
        raise bad('no "stride"')

    def whole(key: str, value: object) -> int:
        # Up to the pipeline's largest working size: a stride above it leaves no size to run at.
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise bad(f'"{key}" must be a whole number from 1 to {MAX_SIZE}, got {value!r}')
        return value

    checked = {"stride": whole("stride", info["stride"]), "input_size": None, "vividness": None, "architecture": None}
    if info.get("input_size") is not None:
        checked["input_size"] = whole("input_size", info["input_size"])
    vividness = info.get("vividness")
    if vividness is not None:
        # json reads NaN and Infinity; every comparison with NaN is False, so it fails here.
        if isinstance(vividness, bool) or not isinstance(vividness, numbers.Real) or not 0.0 <= vividness <= 1.0:
            raise bad(f'"vividness" must be null or a number in [0, 1], got {vividness!r}')
        checked["vividness"] = float(vividness)
    architecture = info.get("architecture")
    if architecture is not None and not isinstance(architecture, str):
        raise bad(f'"architecture" must be null or a name, got {architecture!r}')
    checked["architecture"] = architecture
    return checked


class OnnxGenerator:
    """A generator exported by :func:`export_onnx`, run by onnxruntime on the CPU; what
    :func:`colorize` needs of a :class:`ColorGenerator` (``stride``, ``input_size``,
    ``predict_ab``, ``disagreement``)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self._ort = require("onnxruntime", "an .onnx model")
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such ONNX file")
        info = _read_sidecar(path)
        self.path = path
        self.stride = info["stride"]
        self.input_size = info["input_size"]
        self.vividness = info["vividness"]
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

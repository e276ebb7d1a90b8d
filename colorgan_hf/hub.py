"""Loading models from a folder or the Hugging Face Hub: safetensors only, configs checked first."""

from __future__ import annotations

import json
import math
import os
import typing

import torch
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from .errors import ModelLoadError

HUB_METADATA = dict(
    library_name="colorgan-hf",
    pipeline_tag="image-to-image",
    license="mit",
    tags=["colorization", "image-colorization", "gan", "pytorch"],
    repo_url="https://github.com/colorgan-hf/colorgan-hf",
)


def resolve_file(model_id: str, filename: str, why: str = "", **download) -> str:
    """The local path of ``filename`` in a folder or a Hub repository (downloaded to the cache)."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if not os.path.isfile(path):
            raise ModelLoadError(f"{model_id}: no {filename}{why}")
        return path
    try:
        return hf_hub_download(repo_id=model_id, filename=filename, revision=download.get("revision"),
                               cache_dir=download.get("cache_dir"), force_download=download.get("force_download", False),
                               token=download.get("token"), local_files_only=download.get("local_files_only", False))
    except EntryNotFoundError:
        raise ModelLoadError(f"{model_id}: no {filename} in the repository{why}") from None
    except LocalEntryNotFoundError:
        raise ModelLoadError(f"{model_id}: {filename} is not in the local cache and the Hub could not be reached "
                             f"(offline, or HF_HUB_OFFLINE=1); download it once with network access, or pass a local "
                             f"folder saved with save_pretrained") from None


def read_config(model_id: str, **download) -> dict:
    """``config.json`` of a folder or Hub repository, as a dict."""
    path = resolve_file(model_id, constants.CONFIG_NAME, **download)
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: not a readable JSON config ({error})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: the config must be a JSON object, got {type(config).__name__}")
    return config


def check_options(cls: type, options: dict, where: str) -> None:
    """Refuse unknown keys, values whose type differs from ``cls.__init__``'s annotations, and values outside ``cls.BOUNDS``.

    Bounds keep a hand-edited config from building a network that exhausts memory.
    """
    hints = typing.get_type_hints(cls.__init__)
    hints.pop("return", None)
    unknown = sorted(set(options) - set(hints))
    if unknown:
        raise ModelLoadError(f"{where}: unknown config keys {unknown} for {cls.__name__} (expected some of {sorted(hints)})")
    for key, value in options.items():
        expected = hints[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ModelLoadError(f"{where}: config key {key!r} must be {expected.__name__}, got {value!r}")
        low, high = getattr(cls, "BOUNDS", {}).get(key, (-math.inf, math.inf))
        if not low <= value <= high:
            raise ModelLoadError(f"{where}: config key {key!r} = {value!r} is outside the supported range [{low}, {high}]")


def load_safetensors(path: str, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse non-floating-point and non-finite weights."""
    from safetensors.torch import load_file

    try:
        state = load_file(path, device=str(map_location))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ModelLoadError(f"{path}: not a readable safetensors file ({error})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point():
            if not torch.isfinite(tensor).all():
                raise ModelLoadError(f"{path}: weight {name!r} holds NaN or infinite values")
        elif not name.endswith("num_batches_tracked"):
            raise ModelLoadError(f"{path}: weight {name!r} is {tensor.dtype}, not floating point")
    return state


class SafetensorsHubMixin(PyTorchModelHubMixin):
    """``PyTorchModelHubMixin`` that checks the config first and loads safetensors only, strictly.

    The stock mixin falls back to a pickled ``pytorch_model.bin`` and loads with
    ``strict=False``; here a repository without ``model.safetensors`` is refused, and
    weights whose names or shapes do not match the config raise a clear error. Subclasses
    turn a config into constructor arguments with :meth:`options_from_config`, which
    refuses bad configs before any weights are read.
    """

    @classmethod
    def options_from_config(cls, config: dict, where: str) -> dict:
        """The keyword arguments of ``cls`` for ``config`` (raises ModelLoadError for a bad one)."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, force_download: bool = False, token: str | bool | None = None,
                        local_files_only: bool = False, map_location: str = "cpu", **overrides):
        """Load from a local folder or a Hub id, after checking ``config.json``."""
        model_id = str(pretrained_model_name_or_path)
        download = dict(revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                        local_files_only=local_files_only)
        options = cls.options_from_config({**read_config(model_id, **download), **overrides}, f"{model_id}/config.json")
        weights = resolve_file(model_id, constants.SAFETENSORS_SINGLE_FILE,
                               "; colorgan-hf loads safetensors weights only, never pickles", **download)
        state = load_safetensors(weights, map_location)
        model = cls(**options)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(f"{weights}: weights do not match config.json ({options}): {error}") from None
        return model

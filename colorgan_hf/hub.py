"""Loading models from a folder or the Hugging Face Hub: safetensors only, configs checked first."""

from __future__ import annotations

import contextlib
import json
import math
import os
import typing
from typing import Iterator

import torch
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                    LocalTokenNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id
from torch.overrides import TorchFunctionMode

from .errors import HubError, ModelLoadError, first_line

HUB_METADATA = dict(
    library_name="colorgan-hf",
    pipeline_tag="image-to-image",
    license="mit",
    tags=["colorization", "image-colorization", "gan", "pytorch"],
    repo_url="https://github.com/colorgan-hf/colorgan-hf",
)


def offline_help() -> str:
    """How to work offline, naming every shipped model this installation has."""
    from .registry import shipped_models  # the registry imports the models, which import this module

    return ("to work offline, download the model once with network access (it is then served from the Hugging Face "
            "cache, also with HF_HUB_OFFLINE=1), or pass a local folder saved with save_pretrained (colorize and the "
            f"CLI also take the shipped models by name: {', '.join(shipped_models())})")


def _hub_unreachable(model_id: str, filename: str, download: dict) -> Exception | None:
    """One quick request (no retries) for ``filename``'s metadata: the error when the Hub gave no answer, else None.

    ``hf_hub_download`` retries a failed connection with back-off for about 23 s before it
    says anything (minutes when requests time out); this tells at once that nobody answers.
    An answer of any kind (404, 401, ...) is left to the download to report.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(model_id, filename, revision=download.get("revision")), token=download.get("token"),
                             timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return None  # the Hub answered
    except (ValueError, TypeError):
        return None  # a malformed id: the download raises its own error
    except Exception as error:  # connection refused, DNS, timeout, proxy: no answer
        return error
    return None


def _unreachable_error(model_id: str, filename: str, reason: object) -> ModelLoadError:
    return ModelLoadError(f"{model_id}: {_typo_note(model_id)}the Hugging Face Hub could not be reached ({reason}) and {filename} "
                          f"is not in the local cache; {offline_help()}")


def _looks_local(model_id: str) -> bool:
    """Whether ``model_id`` can only be a path: a Hub id is "name" or "namespace/name", never absolute, never
    relative to ".", ".." or "~", never deeper."""
    parts = model_id.replace(os.sep, "/").split("/")
    return os.path.isabs(model_id) or parts[0] in (".", "..") or model_id.startswith("~") or len(parts) > 2


def _typo_note(model_id: str) -> str:
    """For a "namespace/name" whose namespace is a folder here ("runs/nosuch"): a mistyped path is likelier
    than a Hub id, so the error says it is no folder before what the Hub said. Empty otherwise."""
    parent, _, name = model_id.replace(os.sep, "/").partition("/")
    return f"no such folder ({parent}/ holds no {name}); as a Hub id: " if name and os.path.isdir(parent) else ""


def resolve_file(model_id: str, filename: str, why: str = "", **download) -> str:
    """The local path of ``filename`` in a folder or a Hub repository (downloaded to the cache).

    When the Hub cannot be reached (offline, HF_HUB_OFFLINE=1, no route, connection refused)
    a cached copy is used; without one the error says so, and how to work offline, at
    once rather than after the client's retries.
    """
    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if not os.path.isfile(path):
            raise ModelLoadError(f"{model_id}: no {filename}{why}")
        return path
    # A path that does not exist must say so, not fail as a malformed Hub id (HFValidationError) or "the Hub could
    # not be reached"; a well-formed id goes on to the Hub (or its cache), even when its namespace is a folder here.
    if os.path.exists(model_id):
        raise ModelLoadError(f"{model_id}: not a folder; expected a folder saved with save_pretrained, a shipped name or a Hub id")
    if _looks_local(model_id):
        raise ModelLoadError(f"{model_id}: no such folder (and not a Hub id)")
    try:
        validate_repo_id(model_id)
    except HFValidationError as error:
        raise ModelLoadError(f"{model_id}: no such folder, and not a Hub id ({error})") from None
    options = dict(repo_id=model_id, filename=filename, revision=download.get("revision"), cache_dir=download.get("cache_dir"),
                   force_download=download.get("force_download", False), token=download.get("token"))
    local_only = download.get("local_files_only", False)
    if not local_only and not constants.is_offline_mode():
        no_answer = _hub_unreachable(model_id, filename, download)
        if no_answer is not None:
            try:
                return hf_hub_download(**{**options, "force_download": False}, local_files_only=True)
            except (OSError, ValueError):  # LocalEntryNotFoundError among them
                raise _unreachable_error(model_id, filename, f"{type(no_answer).__name__}: {no_answer}") from None
    try:
        return hf_hub_download(**options, local_files_only=local_only)
    except LocalEntryNotFoundError:
        # A subclass of EntryNotFoundError: it must be caught first (it is no "missing file" answer of the Hub).
        reason = "HF_HUB_OFFLINE=1 is set" if constants.is_offline_mode() else "local_files_only=True" if local_only else "no answer"
        raise _unreachable_error(model_id, filename, reason) from None
    except EntryNotFoundError:
        raise ModelLoadError(f"{model_id}: no {filename} in the repository{why}") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"{model_id}: no revision {download.get('revision')!r} in the repository") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{model_id}: no such folder, and no such model repository on the Hub (or it is private or "
                             f"gated: log in with `hf auth login`)") from None


def _network_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises when no answer comes: offline mode and the connection errors of its HTTP library."""
    from huggingface_hub import utils

    http = getattr(utils, "httpx", None)  # the httpx module of huggingface_hub >= 1.0; older ones use requests
    if http is not None:
        transport = http.TransportError
    else:
        import requests

        transport = requests.RequestException
    return OfflineModeIsEnabled, ConnectionError, TimeoutError, transport


@contextlib.contextmanager
def push_errors(repo_id: str) -> Iterator[None]:
    """Around an upload to ``repo_id``: an unreachable Hub, a missing or refused login and any refusal of the Hub
    become one-line :class:`HubError` s (the CLI and train.py print those without a traceback)."""
    nothing = "nothing was pushed"
    try:
        yield
    except HfHubHTTPError as error:  # before the network errors: it is an OSError, and the HTTP library's error too
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            raise HubError(f"{repo_id}: the Hugging Face Hub refused the login (401: no token, or an invalid or expired one): "
                           f"log in with `hf auth login` (a token with write access) or set HF_TOKEN; {nothing}") from None
        if status == 403:
            raise HubError(f"{repo_id}: this login may not write to the repository (403): log in with `hf auth login` using a "
                           f"token with write access to it; {nothing}") from None
        raise HubError(f"{repo_id}: the Hugging Face Hub refused the push ({first_line(error)}); {nothing}") from None
    except LocalTokenNotFoundError:
        raise HubError(f"{repo_id}: not logged in to the Hugging Face Hub: log in with `hf auth login` (a token with write "
                       f"access) or set HF_TOKEN; {nothing}") from None
    except _network_errors() as error:
        reason = ("offline: HF_HUB_OFFLINE=1 is set" if isinstance(error, OfflineModeIsEnabled) or constants.is_offline_mode()
                  else f"network error: {type(error).__name__}: {error}")
        raise HubError(f"{repo_id}: cannot reach the Hugging Face Hub ({reason}): {nothing}") from None


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


# safetensors dtype names of floating-point tensors.
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def read_safetensors_header(path: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{name: (dtype, shape)} of a safetensors file, from its header alone: no tensor data is read."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            header = {}
            for name in handle.keys():
                part = handle.get_slice(name)
                header[name] = (part.get_dtype(), tuple(part.get_shape()))
            return header
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ModelLoadError(f"{path}: not a readable safetensors file ({error})") from None


class _ParametersOnMeta(TorchFunctionMode):
    """Inside it ``torch.empty`` makes meta tensors: the parameters of the modules built in it
    have shapes but no memory, while the small computed buffers (bin centres, ...) are real."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty:
            kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


def expected_state(cls: type, options: dict, where: str) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the state dict ``cls(**options)`` would have, found without allocating its weights."""
    try:
        with _ParametersOnMeta():
            model = cls(**options)
    except (ValueError, TypeError) as error:
        raise ModelLoadError(f"{where}: {error}") from None
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def check_weights_header(path: str, cls: type, options: dict) -> None:
    """Refuse a weights file whose header does not match the model ``options`` build, or holds non-float weights.

    Runs before the weights are read and before the model is built, so a config that asks
    for a huge network beside small weights fails at once, without allocating it.
    """
    header = read_safetensors_header(path)
    for name, (dtype, _) in header.items():
        if dtype not in FLOAT_DTYPES and not name.endswith("num_batches_tracked"):
            raise ModelLoadError(f"{path}: weight {name!r} is {dtype}, not floating point")
    expected = expected_state(cls, options, path)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    wrong = [f"{name} {list(header[name][1])} (config.json needs {list(shape)})" for name, shape in expected.items()
             if name in header and header[name][1] != shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} of another shape (e.g. {', '.join(wrong[:3])})" if wrong else ""]
        raise ModelLoadError(f"{path}: weights do not match config.json ({options}): "
                             f"{'; '.join(p for p in parts if p)}")


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
        # The header's names, shapes and dtypes against the model the config builds, before
        # reading any weight or building anything large.
        check_weights_header(weights, cls, options)
        state = load_safetensors(weights, map_location)
        model = cls(**options)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(f"{weights}: weights do not match config.json ({options}): {error}") from None
        return model

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        """``PyTorchModelHubMixin.push_to_hub``, its failures to reach the Hub or log in as one-line :class:`HubError` s."""
        with push_errors(repo_id):
            return super().push_to_hub(repo_id, *args, **kwargs)

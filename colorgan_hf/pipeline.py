"""One call from a black-and-white photo to a colour one: :func:`colorize`.

The network only ever sees a small copy of the photo (the working resolution); its chroma
is upsampled and put back together with the photo's own full-resolution lightness, so
every detail of the input survives, whatever its size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator, Sequence, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import lab_to_srgb8, lightness
from .errors import ColorGANError, OptionError
from .images import ImageInput, is_batch, load_image, to_pil
from .models import ColorGenerator, vividness_architectures
from .registry import load_model

DEFAULT_SIZE = 256
# Full-resolution recombination works on bands of this many rows.
BAND_ROWS = 128
# The working image's long side is at most this many times its short side, so a
# 1x5000 strip does not become a 256x1,280,000 network input.
MAX_ASPECT = 4
# The working resolution's short side may not exceed this: --size 8192 on a small photo
# asked for a 24 GB network input.
MAX_SIZE = 2048
# Reductions beyond this factor are averaged over areas first (see working_lightness).
MAX_ANTIALIAS_FACTOR = 64
# auto_contrast: the share of the working image's pixels left darker (and lighter) than the
# stretched range, as PIL's ImageOps.autocontrast(cutoff=0.5) leaves of a photo.
AUTO_CONTRAST_CUTOFF = 0.005
# ... and a photo whose lightness spans less than this (L* units: a flat gray card) is left as it is.
AUTO_CONTRAST_MIN_SPAN = 1.0

logger = logging.getLogger("colorgan")


def working_shape(height: int, width: int, model: ColorGenerator, size: int = DEFAULT_SIZE) -> tuple[int, int]:
    """The (h, w) the network runs at for a ``height`` x ``width`` photo.

    The short side goes to ``size`` (rounded to the model's stride), the aspect ratio is
    kept up to :data:`MAX_ASPECT`; a network with a fixed input size gets that size.
    """
    if model.input_size is not None:
        return model.input_size, model.input_size
    if not model.stride <= size <= MAX_SIZE:
        raise OptionError(f"size must be between the model's stride {model.stride} and {MAX_SIZE}, got {size}")
    short, long = min(height, width), max(height, width)
    scale = min(size / short, size * MAX_ASPECT / long)

    def snap(side: int) -> int:
        return max(model.stride, round(side * scale / model.stride) * model.stride)

    return snap(height), snap(width)


def _device(generator) -> torch.device:
    """Where ``generator`` runs: its weights' device (an ONNX generator runs on the CPU)."""
    return next(generator.parameters()).device if isinstance(generator, torch.nn.Module) else torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Run ``model`` in eval mode inside the block, then give each of its modules back its own mode.

    A model already wholly in eval mode (the shipped ones, the Space's) is not touched at
    all, so concurrent calls on it never write its state; an ONNX generator has no mode.
    """
    if not isinstance(model, torch.nn.Module):
        yield
        return
    training = [module for module in model.modules() if module.training]
    if not training:
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for module in training:
            module.training = True  # the flag alone: train(True) would also switch its children


@dataclass
class _Prepared:
    name: str
    alpha: np.ndarray | None  # the input's transparency, kept aside (its pixels are not kept: only L goes on)
    l_full: torch.Tensor  # (1, 1, H, W) L in [0, 100], the photo's own lightness
    l_small: torch.Tensor  # (1, 1, h, w) the same at the working resolution


def _prepare(source: ImageInput, model: ColorGenerator, size: int, max_pixels: int | None,
             auto_contrast: bool = False) -> _Prepared:
    loaded = load_image(source, max_pixels=max_pixels)
    # A colour photo becomes gray by dropping its chroma: only L goes on.
    # A band of rows at a time: the 8-bit lookups index with int64 (8 bytes a channel and a pixel).
    pixels = loaded.pixels
    l_full = torch.empty(1, 1, *pixels.shape[1:], dtype=torch.float32)
    for top in range(0, pixels.shape[1], BAND_ROWS):
        l_full[0, :, top : top + BAND_ROWS] = lightness(pixels[:, top : top + BAND_ROWS])
    shape = working_shape(l_full.shape[2], l_full.shape[3], model, size)
    l_small = working_lightness(l_full, shape)
    return _Prepared(loaded.name, loaded.alpha, l_full, stretch_lightness(l_small) if auto_contrast else l_small)


def stretch_lightness(l_small: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) L* in [0, 100] -> the same, its tones stretched to the whole range: the
    AUTO_CONTRAST_CUTOFF darkest pixels to 0 and as many lightest to 100, linearly between.

    What the network sees of a faded or low-contrast scan (the photo's own lightness is kept
    in the output). The networks learned from photos with real blacks and whites: shown a
    faded one as it is, they paint it less truly (the README's "Faded photos").
    """
    values = l_small.flatten()
    k = int(AUTO_CONTRAST_CUTOFF * values.numel())  # kthvalue, not quantile: quantile refuses 2**24 values
    low = values.kthvalue(k + 1).values.item()
    high = values.kthvalue(values.numel() - k).values.item()
    if high - low < AUTO_CONTRAST_MIN_SPAN:
        return l_small
    return ((l_small - low) * (100.0 / (high - low))).clamp_(0.0, 100.0)


def working_lightness(l_full: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) float32 L* in [0, 100] -> (B, 1, h, w): what the network sees.

    Bicubic and antialiased, as the pair sets were resized (PIL's bicubic in
    :func:`colorgan_hf.data.resize_image`): the networks learned the sharpness of that
    filter, and a softer bilinear input costs them accuracy on every photo whose short
    side is not the working size (see the default model card, "Input resizing").
    """
    source = l_full
    if l_full.shape[2] > MAX_ANTIALIAS_FACTOR * shape[0] or l_full.shape[3] > MAX_ANTIALIAS_FACTOR * shape[1]:
        # An antialiased resize holds a filter as wide as the reduction: a 100,000,000x1 strip
        # would need gigabytes. Averaging areas first brings it within reach.
        middle = (min(l_full.shape[2], 16 * shape[0]), min(l_full.shape[3], 16 * shape[1]))
        source = F.adaptive_avg_pool2d(l_full, middle)
    # Bicubic overshoots at hard edges; the pair sets' 8-bit pixels could not.
    return F.interpolate(source, size=shape, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 100.0)


def _upsample_rows(ab_rows: torch.Tensor, top: int, bottom: int, height: int) -> torch.Tensor:
    """Rows ``top:bottom`` of the bilinear (align_corners=False) upsampling of ``ab_rows``
    (2, h, W) to ``height`` rows: exactly what ``F.interpolate`` computes, one band at a time,
    so a 50-megapixel photo never holds its full-size chroma at once."""
    h = ab_rows.shape[1]
    y = (torch.arange(top, bottom, dtype=torch.float32) + 0.5) * (h / height) - 0.5
    y = y.clamp_(min=0.0)
    y0 = y.long().clamp_(max=h - 1)
    y1 = (y0 + 1).clamp_(max=h - 1)
    weight = (y - y0).view(1, -1, 1)
    upper = ab_rows[:, y0]
    return upper.add_(ab_rows[:, y1].sub_(upper).mul_(weight))


def _finish(prepared: _Prepared, ab_small: torch.Tensor, saturation: float) -> Image.Image:
    """Upsample the chroma and join it to the full-resolution L, a band of rows at a time
    so that the float temporaries of a 12-megapixel photo stay small and in cache, and the
    full-size chroma is never held at once (memory: the photo's L, 4 bytes a pixel, and the
    8-bit result; ``bench``: about 16 bytes a pixel at the peak, Pillow's copy included)."""
    l_full = prepared.l_full[0]  # (1, H, W)
    out = torch.empty(*l_full.shape[1:], 3, dtype=torch.uint8)  # HWC: Pillow takes it without a transposed copy
    ab_small = ab_small.float().cpu()[None]
    if saturation != 1.0:
        ab_small = ab_small * saturation
    # Bands run along the rows; a photo far wider than tall (a 100,000,000x1 strip) is worked
    # on transposed (views, no copies), so the column pass below stays small.
    if ab_small.shape[2] * l_full.shape[2] > max(16 * ab_small.shape[3] * l_full.shape[1], 1 << 24):
        l_full, ab_small, out = l_full.transpose(1, 2), ab_small.transpose(2, 3), out.transpose(0, 1)
    height, width = l_full.shape[1:]
    band_rows = max(BAND_ROWS, (1 << 18) // width)
    # Bilinear upsampling is separable: the columns first, at the working height (small)...
    ab_columns = F.interpolate(ab_small, size=(ab_small.shape[2], width), mode="bilinear", align_corners=False)[0]
    for top in range(0, height, band_rows):
        bottom = min(top + band_rows, height)
        # ...then the rows, one band at a time.
        ab = _upsample_rows(ab_columns, top, bottom, height)
        out[top:bottom] = lab_to_srgb8(l_full[:, top:bottom], ab).permute(1, 2, 0)
    if out.stride(1) != 3:  # worked on transposed: back to a contiguous HWC view of the same memory
        out = out.transpose(0, 1)
    return to_pil(out, prepared.alpha, channels_last=True)


def _generator(model):
    """A :class:`ColorGenerator` from anything :func:`load_model` takes, or an ONNX generator
    (an ``OnnxGenerator``, or a path to a ``.onnx`` file written by ``colorgan export-onnx``)."""
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        from .onnx import OnnxGenerator

        return OnnxGenerator(model)
    if type(model).__name__ == "OnnxGenerator":
        return model
    return load_model(model)


def _is_number(value: object) -> bool:
    """A real number, numpy's included; not a bool (True is an int to Python, never a saturation) nor a str."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_whole_number(value: object) -> bool:
    """An integer, numpy's included (``np.int64(3)`` from an array's arithmetic), or a float that is
    one (``256.0`` from a division or a UI slider); not a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())


def _shown(value: object) -> str:
    """An option's value in a message: a number as it prints, anything else with its type ("'2' (str)")."""
    return str(value) if _is_number(value) else f"{value!r} ({type(value).__name__})"


def check_options(saturation: float, vividness: float | None, batch_size: int = 1, max_pixels: int | None = None,
                  flag: str = "") -> None:
    """The checks every colorizing entry point (photos, videos, the CLI) makes of its common options.

    Each check is written so that NaN fails it (every comparison with NaN is False): a NaN
    or infinite saturation would otherwise reach the colour tables as an index. A value of
    the wrong type (``saturation="2"``, ``batch_size=2.5``) is refused here too, rather than
    as a TypeError from deep inside. ``flag`` ("--" for the command line) goes before each
    option's name in the message.
    """
    if not (_is_number(saturation) and 0.0 <= saturation < math.inf):
        raise OptionError(f"{flag}saturation must be a finite number >= 0, got {_shown(saturation)}")
    if vividness is not None and not (_is_number(vividness) and 0.0 <= vividness <= 1.0):
        raise OptionError(f"{flag}vividness must be in [0, 1], got {_shown(vividness)}")
    if not (_is_whole_number(batch_size) and batch_size >= 1):
        raise OptionError(f"{flag}batch_size must be a whole number >= 1, got {_shown(batch_size)}")
    # A limit, not a count: a float (1e8) is as good as an int.
    if max_pixels is not None and not (_is_number(max_pixels) and max_pixels >= 1):
        raise OptionError(f"{flag}max_pixels must be >= 1, got {_shown(max_pixels)}")


def check_size(size: object) -> int:
    """``size`` as an int, else an OptionError: a whole number (numpy's too). Its range depends on the
    model (its stride), so :func:`working_shape` checks that."""
    if not _is_whole_number(size):
        raise OptionError(f"size must be a whole number, got {_shown(size)}")
    return int(size)


def warn_if_vividness_ignored(generator, vividness: float | None, name: str | None = None) -> None:
    """One warning when a vividness was asked of a model that predicts one colour a pixel, where it
    changes nothing: only the classification architectures (``unet_bins`` and its kin) take it."""
    if vividness is not None and getattr(generator, "takes_vividness", True) is False:
        logger.warning("vividness %g has no effect on model %s (%s): only the classification architectures (%s) use it",
                       vividness, name or "default", generator.architecture, ", ".join(vividness_architectures()))


def _parse_hints(hints, single: bool) -> list:
    """The parsed hints of a call (empty without any); hints go with a single photo only."""
    if hints is None:
        return []
    from .hints import HintError, parse_hints

    if not single:
        raise HintError("hints are in pixels of one photo: pass a single image with hints=, not a list")
    return parse_hints(hints)


def _check_photo_hints(prepared: _Prepared, hints: list) -> None:
    """Every hint fits the photo, else a HintError naming the photo and the hint."""
    from .hints import HintError, check_hints

    try:
        check_hints(hints, prepared.l_full.shape[3], prepared.l_full.shape[2])
    except HintError as error:
        raise HintError(f"{prepared.name}: {error}") from None


def _finish_with_hints(prepared: _Prepared, ab_small: torch.Tensor, saturation: float, hints: list) -> Image.Image:
    """:func:`_finish` of the prediction corrected by colour hints. Saturation scales the
    model's colours before the hints correct them, so a hint's colour is kept as given."""
    from .hints import HintError, apply_hints

    ab = ab_small.float().cpu() * saturation
    try:
        ab = apply_hints(prepared.l_small[0].cpu(), ab, hints, tuple(prepared.l_full.shape[2:]))
    except HintError as error:  # which photo it was, for a caller running many
        raise HintError(f"{prepared.name}: {error}") from None
    return _finish(prepared, ab, 1.0)


@overload
def colorize(image: ImageInput, model: ... = ..., **kwargs) -> Image.Image: ...
@overload
def colorize(image: Sequence[ImageInput], model: ... = ..., **kwargs) -> list[Image.Image]: ...


@torch.inference_mode()
def colorize(
    image: ImageInput | Sequence[ImageInput],
    model: str | os.PathLike | ColorGenerator | None = None,
    *,
    size: int = DEFAULT_SIZE,
    saturation: float = 1.0,
    vividness: float | None = None,
    batch_size: int = 8,
    max_pixels: int | None = None,
    hints: Sequence | None = None,
    auto_contrast: bool = False,
) -> Image.Image | list[Image.Image]:
    """Colorize a photo (or a list of photos) of any size and mode.

    The model runs in eval mode; a model passed in training mode is given back in training mode.

    Args:
        image: a path (str, bytes or os.PathLike), PIL image, numpy array or binary file object
            (``open(path, "rb")``, ``io.BytesIO(data)``) of a photo (gray, colour, 16-bit, palette, CMYK,
            with or without alpha), or a list (or any other iterable: a tuple, a generator) of them
            for a batched call. Arrays are (H, W) or (H, W, 1-4), ``uint8``, ``uint16``, ``bool``, floats
            in [0, 1] (outside it is refused: divide 0-255 values by 255), or other integer
            types holding 0-255 (read as 8-bit; other values are refused). A torch tensor is refused.
        model: a :class:`ColorGenerator`, a shipped name (``"default"``, ``"fast"``, ``"vivid"``, ``"paper"``), a
            local folder or a Hub id; ``None`` takes the shipped default; or an ``.onnx``
            file from ``colorgan export-onnx`` (run with onnxruntime).
        size: short side of the working resolution the network runs at (the ``paper``
            network always runs at its fixed 120x120).
        saturation: multiplies the predicted chroma (0 gives the gray photo back).
        vividness: in [0, 1], how far a model that predicts a distribution of colours
            (``unet_bins``, ``semantic_bins``) moves from their mean (0: the safest, most
            muted colours) towards the most likely one (1: the most vivid, sometimes wrong);
            ``None`` takes the model's own default. Models that predict one colour ignore it.
        batch_size: how many photos of a list go through the network together.
        max_pixels: refuse images larger than this (default: :func:`colorgan_hf.images.max_pixels_setting`).
        hints: colour hints for a single photo (:mod:`colorgan_hf.hints`): points
            ``{"x", "y", "color"}``, strokes ``{"points": [[x, y], ...], "width", "color"}`` or
            masks ``{"mask", "color"}`` in pixels of the photo after EXIF rotation, colours in
            sRGB (``"#aa2233"``, ``(170, 34, 51)``); their chroma is spread over the region
            each belongs to, the photo's lightness is kept. ``None`` or ``[]``: none.
        auto_contrast: show the network the photo's tones stretched to the whole range
            (:func:`stretch_lightness`): for faded or low-contrast scans, whose colours it
            otherwise paints less truly. The output keeps the photo's own lightness either way.

    Returns:
        a PIL image of exactly the input's size (after EXIF rotation): RGB, or RGBA when
        the input had transparency. A list in, a list out.

    Raises:
        ImageLoadError: an input cannot be read; the message names it and says why.
        OptionError: an option is out of range, of the wrong type or not a finite number.
        HintError: a hint is malformed or off the photo (or hints were given with a list of photos).
    """
    check_options(saturation, vividness, batch_size, max_pixels)
    size, batch_size = check_size(size), int(batch_size)  # numpy integers as Python's, for range() and the shapes
    # A file object, a tensor or an array is iterable too, but one photo (images.is_batch).
    single = not is_batch(image)
    sources = [image] if single else list(image)
    parsed_hints = _parse_hints(hints, single)
    generator = _generator(model)
    device = _device(generator)
    results: list[Image.Image] = []
    # A caller's model in training mode runs in eval mode here and is given back as it came.
    with _eval_mode(generator):
        # Photos are read batch_size at a time so a long list never sits in memory at once.
        for start in range(0, len(sources), batch_size):
            prepared = [_prepare(s, generator, size, max_pixels, auto_contrast) for s in sources[start : start + batch_size]]
            if parsed_hints:  # a hint off the photo is refused before the network runs
                _check_photo_hints(prepared[0], parsed_hints)
            by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
            for index, item in enumerate(prepared):
                by_shape[tuple(item.l_small.shape[2:])].append(index)
            ab_small: list[torch.Tensor | None] = [None] * len(prepared)
            for indices in by_shape.values():
                batch = torch.cat([prepared[i].l_small for i in indices]).to(device)  # (b, 1, h, w)
                predicted = generator.predict_ab(batch, vividness)  # (b, 2, h, w)
                if not torch.isfinite(predicted).all():
                    names = ", ".join(prepared[i].name for i in indices)
                    raise ColorGANError(f"{names}: the model gave non-finite colours (NaN or inf): are its weights finite?")
                for i, ab in zip(indices, predicted):
                    ab_small[i] = ab
            if parsed_hints:
                results.append(_finish_with_hints(prepared[0], ab_small[0], saturation, parsed_hints))
            else:
                results.extend(_finish(item, ab, saturation) for item, ab in zip(prepared, ab_small))
    return results[0] if single else results


@torch.inference_mode()
def suggest_hints(
    image: ImageInput,
    model: str | os.PathLike | ColorGenerator | None = None,
    count: int = 5,
    *,
    size: int = DEFAULT_SIZE,
    max_pixels: int | None = None,
    auto_contrast: bool = False,
    hints: Sequence | None = None,
) -> list[tuple[int, int]]:
    """Where colour hints would help most: ``count`` spots (x, y) of the photo, best first.

    For a person who knows some of a photo's colours but not where to give them: each spot is
    the centre of a large region of even lightness, chosen in turn so that its hint would
    reach the most of the photo that the earlier ones do not, where the model is least sure
    (where the two networks of the shipped default disagree; models of one network: anywhere).
    Give each spot its true colour as a point hint (``colorize(image, hints=[{"x": x, "y": y,
    "color": ...}, ...])``). On bsds500_test (`python bench/hints.py --parts suggest`), 5
    suggested spots do nearly what 10 random ones do, and 10 what 20 do.

    Args:
        image: one photo, as :func:`colorize` takes it.
        model, size, max_pixels, auto_contrast: as for :func:`colorize`; use the same ones.
        count: how many spots, 1 to 50; the first ``n`` of ``count`` are the best ``n``.
        hints: the hints already given (as :func:`colorize` takes them): the spots go where
            they do not reach ("where next?").

    Returns:
        ``count`` (x, y) pixel positions (fewer for a tiny photo), in the photo after EXIF rotation.
    """
    from .hints import suggest_points

    if is_batch(image):  # the same rule as colorize's: what it would take as a batch
        raise TypeError("suggest_hints takes one photo, not a list")
    check_options(1.0, None, 1, max_pixels)
    size = check_size(size)
    if _is_whole_number(count):  # numpy's integers as Python's; anything else is refused by suggest_points
        count = int(count)
    given = _parse_hints(hints, True)
    generator = _generator(model)
    device = _device(generator)
    prepared = _prepare(image, generator, size, max_pixels, auto_contrast)
    if given:  # a hint off the photo is refused, as colorize refuses it
        _check_photo_hints(prepared, given)
    with _eval_mode(generator):
        uncertainty = generator.disagreement(prepared.l_small.to(device))
    if uncertainty is not None and not torch.isfinite(uncertainty).all():
        raise ColorGANError(f"{prepared.name}: the model gave non-finite colours (NaN or inf): are its weights finite?")
    return suggest_points(prepared.l_small[0], None if uncertainty is None else uncertainty[0, 0], tuple(prepared.l_full.shape[2:]),
                          count, given)

"""Colour hints: "this dress was red". Points, strokes and masks of a known colour, spread
over the region they belong to on top of the model's automatic colours.

A hint is given in sRGB (what a person picks), but only its chroma is used: it is converted
to CIE Lab and its a*b* imposed, while the photo keeps its own lightness L.

How a hint spreads (no retraining; the same for every architecture, ONNX included): at the
working resolution, each hint marks its footprint, and its weight at every pixel falls off
with the **geodesic distance** from that footprint over the lightness surface. A step from
one pixel to the next costs one pixel plus ``edge_cost`` per L* unit of lightness change
(measured on the lightness blurred by ``smooth`` pixels, so that texture does not count as
edges), so distance grows slowly inside a region of even lightness and jumps across a
lightness edge: a hint fills its region and fades at its borders. The weight is Gaussian in
that distance (``exp(-(d / reach)^2)``): flat near the hint (the patch around a point takes
its colour) and negligible beyond ``reach`` (the rest of the photo keeps the model's
colours). What a hint asks for is a mix (``flatten``) of its residual under it (hint minus
the prediction there, which keeps the model's variations) and its own colour; where several
hints reach a pixel, the nearest dominates (their weights are averaged at the power
``sharpness``); the result is applied with the strength of the strongest weight, all of it
on a hint. The corrected a*b* goes through the pipeline's full-resolution recombination like
any prediction.

Distances are computed with exact one-dimensional passes along rows and columns
(``torch.cummin`` of the cumulated step costs), alternated a few times, so paths may turn
around obstacles; it is vectorised over hints and costs a few tens of milliseconds at the
default working size (``bench/hints.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor, ImageDraw, ImageOps

from .color import rgb_to_lab
from .errors import ColorGANError, OptionError
from .images import FLOAT_RANGE_TOLERANCE

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]
# A point's footprint: the hint's colour is imposed on a disk of this radius (pixels of the
# original photo), as big as the 5x5 patch one would pick a colour from.
DEFAULT_POINT_RADIUS = 2.0
DEFAULT_STROKE_WIDTH = 5.0
# A call with more hints than this is refused: the cost grows with their number.
MAX_HINTS = 500
# Propagation parameters, chosen on BSDS500 *training* photos with bench/hints.py --tune
# (reach, edge cost and flatten on 24 photos, smoothing and sharpness on 10), never on the
# test photos the README's table reports: the most CIEDE2000 gained with 10 and 50 hints
# while one hint moves well under 30% of the photo.
# Gaussian reach of a hint, as a fraction of the propagation grid's short side.
DEFAULT_REACH = 0.5
# Cost of one L* unit of lightness change, in pixels of the propagation grid.
DEFAULT_EDGE_COST = 1.0
# 0: carry each hint's residual (hint minus the prediction under it) unchanged, so the
# model's own variations inside the region survive; 1: pull every pixel towards the hint's
# colour itself (flat chroma).
DEFAULT_FLATTEN = 0.5
# Standard deviation (propagation-grid pixels) of the Gaussian blur of the lightness that
# the geodesic costs are measured on: texture (foliage, grass, fabric) averages out, region
# borders stay.
DEFAULT_SMOOTH = 1.5
# Cost of a squared L* change in one step (see geodesic_distance); off by default (not tuned).
DEFAULT_EDGE_SQUARE = 0.0
# Overlapping hints are averaged with their weights to this power (Shepard-like): the nearest
# dominates, far ones barely pull.
DEFAULT_SHARPNESS = 4.0
# Row/column pass pairs: paths may turn this many times x2 around obstacles.
GEODESIC_ROUNDS = 3
# The propagation runs on at most this many pixels (the working grid, or a smaller copy of
# it for very large working sizes): its memory is hints x pixels.
MAX_GRID_PIXELS = 400_000
# Hints are propagated this many at a time (memory: CHUNK x grid pixels x 12 bytes).
CHUNK = 16


class HintError(ColorGANError, ValueError):
    """A colour hint is malformed or does not fit the photo; the message names the hint (its
    index in the list, from 0) and what is wrong."""


@dataclass(frozen=True)
class PointHint:
    """The colour at pixel (x, y) of the original photo (after EXIF rotation; x to the right,
    y down, from 0), imposed on a disk of ``radius`` pixels and spread over its region. A
    radius beyond the photo's diagonal is taken as the diagonal: the disk covers the whole
    photo either way."""

    x: float
    y: float
    color: RGB
    radius: float = DEFAULT_POINT_RADIUS


@dataclass(frozen=True)
class StrokeHint:
    """A polyline through ``points`` [(x, y), ...] of ``width`` pixels (one point: a dot). A
    width beyond twice the photo's diagonal is taken as twice the diagonal: the stroke covers
    the whole photo either way."""

    points: tuple[tuple[float, float], ...]
    color: RGB
    width: float = DEFAULT_STROKE_WIDTH


@dataclass(frozen=True, eq=False)
class MaskHint:
    """Every pixel set in ``mask`` (a bool (H, W) array of the photo's size, after EXIF
    rotation) has ``color``."""

    mask: np.ndarray = field(repr=False)
    color: RGB


Hint = Union[PointHint, StrokeHint, MaskHint]
HintInput = Union[Hint, Mapping[str, Any]]

_KEYS = {
    "point": ({"x", "y", "color"}, {"radius"}),
    "stroke": ({"points", "color"}, {"width"}),
    "mask": ({"mask", "color"}, set()),
}


def _kind(hint: Hint) -> str:
    return {PointHint: "point", StrokeHint: "stroke", MaskHint: "mask"}[type(hint)]


def parse_color(value: Any, where: str = "colour") -> RGB:
    """``"#aa2233"``, ``"#a23"``, a CSS name (``"red"``), ``"rgb(170, 34, 51)"`` or an (r, g, b)
    sequence of numbers in 0-255 -> (r, g, b) ints. Anything else raises :class:`HintError`."""
    if value is None:  # a spot of `colorgan suggest-hints -o` whose colour was not filled in
        raise HintError(f"{where}: not given: fill in the colour you know at that spot, or remove the hint")
    if isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value.strip())
        except ValueError:
            raise HintError(f"{where}: {value!r} is not a colour (expected '#rrggbb', '#rgb', a CSS name or [r, g, b] in 0-255)") from None
        return tuple(int(c) for c in rgb[:3])  # type: ignore[return-value]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and len(value) == 3:
        try:
            numbers = [float(c) for c in value]
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float's range
            numbers = []
        if len(numbers) == 3 and all(math.isfinite(c) and 0 <= c <= 255 for c in numbers) and not any(isinstance(c, bool) for c in value):
            return tuple(int(round(c)) for c in numbers)  # type: ignore[return-value]
        raise HintError(f"{where}: {_shown(value)} is not a colour: [r, g, b] needs three numbers in 0-255")
    raise HintError(f"{where}: {_shown(value)} is not a colour (expected '#rrggbb', '#rgb', a CSS name or [r, g, b] in 0-255)")


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages: a hint may hold anything, and
    Python refuses the repr of an int of over 4300 digits."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise HintError(f"{where}: {_shown(value)} is not a finite number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond a float's range (about 1.8e308): no position or size is that large
        raise HintError(f"{where}: {_shown(value)} is too large (not a finite number of pixels)") from None
    if not math.isfinite(number):
        raise HintError(f"{where}: {_shown(value)} is not a finite number")
    if positive and number <= 0:
        raise HintError(f"{where}: must be > 0, got {_shown(value)}")
    return number


def _point(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, Mapping) and set(value) == {"x", "y"}:
        value = (value["x"], value["y"])
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 2:
        raise HintError(f"{where}: {value!r} is not a point [x, y]")
    return _number(value[0], f"{where} x"), _number(value[1], f"{where} y")


def _load_mask(value: Any, where: str, base_dir: Path | None) -> np.ndarray:
    """A mask from a bool/number array (non-zero = set; NaN and inf refused) or an image (a
    file or a PIL image; see :func:`_load_mask_image`)."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            with Image.open(path) as image:
                image.load()
                return _load_mask_image(image, where)
        except HintError:
            raise
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise HintError(f"{where}: cannot read the mask image {str(path)!r} ({type(error).__name__}: {error})") from None
    if isinstance(value, Image.Image):
        try:
            return _load_mask_image(value, where)
        except HintError:
            raise
        except (OSError, ValueError) as error:  # a mode Pillow cannot convert, an image closed or truncated
            raise HintError(f"{where}: cannot read the mask image ({type(error).__name__}: {error})") from None
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a mask
        array = np.asarray(None)
    if array.ndim != 2 or not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise HintError(f"{where}: expected a 2-D array (H, W) or an image file, got {type(value).__name__} "
                        f"{getattr(array, 'shape', '')}")
    # NaN != 0 holds: without this a NaN pixel would count as set.
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
        raise HintError(f"{where}: the mask holds NaN or infinite values (expected bool or numbers, non-zero = set)")
    return array != 0


# Integer modes Pillow gives 16-bit images (PNG, TIFF) and 32-bit integer ones: read on 0-65535, as a photo is.
_SIXTEEN_BIT = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def _load_mask_image(image: Image.Image, where: str = "mask") -> np.ndarray:
    """The pixels set in a mask image, after its EXIF rotation (hint positions are in the
    rotated photo): its opaque ones (alpha >= 128) when it has an alpha channel that varies,
    else those at least as bright as 128 of 255. The brightness is read as a photo is read
    (:mod:`colorgan_hf.images`): 16-bit (and 32-bit integer) images on 0-65535, float images
    on 0-1 (or 0-255 when some pixel is above 1), so a 0/1 float TIFF is a mask and a 16-bit
    30% gray is not set."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block must not cost the mask (as for the photo)
        logger.debug("%s: the mask's EXIF orientation is unreadable, ignored (%s)", where, error)
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA").getchannel("A") if image.mode == "P" else image.getchannel("A"))
        # Paint programs save a white shape on black as a fully opaque RGBA image: an alpha
        # that is one value throughout tells nothing, the brightness does.
        if alpha.size and alpha.min() != alpha.max():
            return alpha >= 128
    # Converted to "L", a 16-bit image is clipped to 255 (30% gray would count as set) and a
    # float one to 0 or 1 (nothing set): their own values are compared with 128 of 255 instead.
    if image.mode in _SIXTEEN_BIT:
        return np.asarray(image).astype(np.int64) >= 128 * 257  # 128 of 255 on 16 bits (255 x 257 = 65535)
    if image.mode == "F":
        values = np.asarray(image)
        if not np.isfinite(values).all():
            raise HintError(f"{where}: the mask image holds NaN or infinite values")
        # A resampled 0/1 mask overshoots 1 by a hair: as for a photo, that is still the 0-1 range.
        return values >= (128 if values.size and values.max() > 1.0 + FLOAT_RANGE_TOLERANCE else 128 / 255)
    return np.asarray(image.convert("L")) >= 128


def parse_hint(value: HintInput, index: int = 0, base_dir: str | os.PathLike | None = None) -> Hint:
    """One hint from a dataclass or a mapping (the JSON form): ``{"x", "y", "color"[, "radius"]}``,
    ``{"points": [[x, y], ...], "color"[, "width"]}`` or ``{"mask": path or array, "color"}``.
    Mask paths are relative to ``base_dir`` (the hints file's folder)."""
    if isinstance(value, (PointHint, StrokeHint, MaskHint)):
        value = {"point": lambda h: {"x": h.x, "y": h.y, "color": h.color, "radius": h.radius},
                 "stroke": lambda h: {"points": h.points, "color": h.color, "width": h.width},
                 "mask": lambda h: {"mask": h.mask, "color": h.color}}[_kind(value)](value)
    if not isinstance(value, Mapping):
        raise HintError(f"hint {index}: expected a point {{x, y, color}}, a stroke {{points, width, color}} or a mask "
                        f"{{mask, color}}, got {type(value).__name__}")
    keys = set(value)
    kind = "mask" if "mask" in keys else "stroke" if "points" in keys else "point" if keys & {"x", "y"} else None
    if kind is None:
        raise HintError(f"hint {index}: cannot tell its kind from its keys {sorted(keys)}: a point has x, y and color; "
                        "a stroke points, color (and width); a mask mask and color")
    required, optional = _KEYS[kind]
    where = f"hint {index} ({kind})"
    if missing := required - keys:
        raise HintError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown := keys - required - optional:
        raise HintError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                        f"(a {kind} takes {', '.join(sorted(required | optional))})")
    color = parse_color(value["color"], f"{where} color")
    if kind == "point":
        radius = _number(value.get("radius", DEFAULT_POINT_RADIUS), f"{where} radius", positive=True)
        return PointHint(_number(value["x"], f"{where} x"), _number(value["y"], f"{where} y"), color, radius)
    if kind == "stroke":
        points = value["points"]
        if isinstance(points, np.ndarray):
            points = points.tolist()
        if not isinstance(points, (list, tuple)) or not points:
            raise HintError(f"{where}: points must be a non-empty list of [x, y]")
        parsed = tuple(_point(p, f"{where} point {i}") for i, p in enumerate(points))
        width = _number(value.get("width", DEFAULT_STROKE_WIDTH), f"{where} width", positive=True)
        return StrokeHint(parsed, color, width)
    mask = _load_mask(value["mask"], where, Path(base_dir) if base_dir is not None else None)
    if not mask.any():
        raise HintError(f"{where}: the mask has no pixel set")
    return MaskHint(mask, color)


def parse_hints(values: Iterable[HintInput] | Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> list[Hint]:
    """A list of hints (dataclasses or their JSON mappings), or ``{"hints": [...]}``; each checked
    for its form (its fit to the photo is checked by :func:`check_hints`)."""
    if isinstance(values, Mapping):
        if set(values) != {"hints"}:
            raise HintError(f"expected a list of hints or {{\"hints\": [...]}}, got an object with keys {sorted(values)}")
        values = values["hints"]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or isinstance(values, (PointHint, StrokeHint, MaskHint)):
        raise HintError(f"hints must be a list of hints, got {type(values).__name__}")
    hints = [parse_hint(value, i, base_dir) for i, value in enumerate(values)]
    if len(hints) > MAX_HINTS:
        raise HintError(f"{len(hints)} hints: at most {MAX_HINTS} per photo")
    return hints


def load_hints_file(path: str | os.PathLike) -> list[Hint]:
    """Hints from a JSON file (README, "Colour hints"); mask paths are relative to its folder.
    UTF-8 with or without a byte-order mark (as Notepad saves it), or UTF-16/32."""
    return read_hints_file(path)[0]


def read_hints_file(path: str | os.PathLike) -> tuple[list[Hint], list]:
    """As :func:`load_hints_file`, with the file's entries as they were written beside the parsed hints
    (for a tool that writes them back, such as ``colorgan suggest-hints -o``), the file read once."""
    path = Path(path)
    try:
        # Bytes, not text: json detects the encoding and skips a UTF-8 byte-order mark.
        data = json.loads(path.read_bytes())
    except OSError as error:
        raise HintError(f"{path}: cannot read the hints file ({error.strerror or error})") from None
    except RecursionError:
        raise HintError(f"{path}: not valid hints JSON (nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an int of over 4300 digits
        raise HintError(f"{path}: not valid JSON ({error})") from None
    try:
        hints = parse_hints(data, base_dir=path.parent)
    except HintError as error:
        raise HintError(f"{path}: {error}") from None
    return hints, list(data["hints"] if isinstance(data, Mapping) else data)


def check_hints(hints: Sequence[Hint], width: int, height: int) -> None:
    """Every hint lies on a ``width`` x ``height`` photo (mask: of exactly its size), else :class:`HintError`."""

    def inside(x: float, y: float, where: str) -> None:
        if not (0 <= x < width and 0 <= y < height):
            raise HintError(f"{where}: ({x:g}, {y:g}) is outside the image ({width}x{height}: x in [0, {width}), y in [0, {height}))")

    for index, hint in enumerate(hints):
        where = f"hint {index} ({_kind(hint)})"
        if isinstance(hint, PointHint):
            inside(hint.x, hint.y, where)
        elif isinstance(hint, StrokeHint):
            for i, (x, y) in enumerate(hint.points):
                inside(x, y, f"{where} point {i}")
        elif hint.mask.shape != (height, width):
            raise HintError(f"{where}: the mask is {hint.mask.shape[1]}x{hint.mask.shape[0]}, the image {width}x{height}")


def hint_ab(hints: Sequence[Hint]) -> torch.Tensor:
    """The CIE Lab a*b* of each hint's sRGB colour: (K, 2)."""
    rgb = torch.tensor([h.color for h in hints], dtype=torch.float32).view(-1, 3, 1, 1) / 255.0
    return rgb_to_lab(rgb)[:, 1:, 0, 0]


def footprints(hints: Sequence[Hint], full_shape: tuple[int, int], grid_shape: tuple[int, int]) -> torch.Tensor:
    """Where each hint imposes its colour on the (h, w) grid: (K, h, w) bool, every hint at
    least one pixel however thin it is at full resolution."""
    height, width = full_shape
    h, w = grid_shape
    sy, sx = h / height, w / width
    out = torch.zeros(len(hints), h, w, dtype=torch.bool)

    def to_grid(x: float, y: float) -> tuple[float, float]:
        # Pixel centres: full-resolution pixel x covers [x, x + 1).
        return (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5

    for k, hint in enumerate(hints):
        if isinstance(hint, MaskHint):
            coverage = F.interpolate(torch.from_numpy(hint.mask).float()[None, None], size=(h, w), mode="area")[0, 0]
            mask = coverage >= 0.5
            if not mask.any():  # a small mask still marks the grid pixel it covers most
                mask = coverage == coverage.max()
            out[k] = mask
            continue
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        if isinstance(hint, PointHint):
            points, radius = [to_grid(hint.x, hint.y)], hint.radius * math.sqrt(sx * sy)
        else:
            points, radius = [to_grid(x, y) for x, y in hint.points], hint.width / 2 * math.sqrt(sx * sy)
        # From a point on the grid, a disk as wide as the grid's diagonal covers all of it: a
        # larger one changes nothing, and ImageDraw takes minutes over a radius of 1e9 and
        # overflows at 2**31.
        radius = min(radius, math.hypot(h, w))
        if len(points) > 1:  # a stroke's polyline
            draw.line(points, fill=255, width=max(1, round(2 * radius)))
        for x, y in points:  # round joints and ends; a dot for a single point
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        mask = torch.from_numpy(np.asarray(canvas) > 0)
        for x, y in points:  # the nearest grid pixel of every point, however small the radius
            mask[min(max(round(y), 0), h - 1), min(max(round(x), 0), w - 1)] = True
        out[k] = mask
    return out


def geodesic_distance(sources: torch.Tensor, lightness: torch.Tensor, edge_cost: float = DEFAULT_EDGE_COST,
                      rounds: int = GEODESIC_ROUNDS, edge_square: float = 0.0) -> torch.Tensor:
    """Distance from each of ``sources`` (K, h, w) bool over the lightness surface ``lightness``
    (h, w), L* in [0, 100]: a step between 4-neighbours costs 1 + ``edge_cost`` x |delta L*|
    + ``edge_square`` x (delta L*)^2. The square term tells a region's border (a large jump in
    one step) from texture and shading (many small steps) that add up to the same change.

    Each pass is exact along its rows (or columns): with C the cumulated step cost along a
    row, d(j) = min over i <= j of d(i) + C(j) - C(i) = C(j) + cummin(d - C)(j). ``rounds``
    alternations of row and column passes, both ways, let paths turn around obstacles.
    """
    def step(change: torch.Tensor) -> torch.Tensor:
        change = change.abs()
        return 1.0 + edge_cost * change + edge_square * change * change

    step_x = step(lightness[:, 1:] - lightness[:, :-1])
    step_y = step(lightness[1:] - lightness[:-1])
    # Cumulated costs along rows, and along columns laid out as rows: cummin along the last,
    # contiguous dimension is several times faster than along a strided one. float32 keeps
    # differences of cumulated costs (at most ~1e5) exact to a hundredth of a pixel.
    cum_x = F.pad(step_x.float().cumsum(1), (1, 0))[None]
    cum_y = F.pad(step_y.float().t().cumsum(1), (1, 0))[None]  # (1, w, h)
    distance = torch.where(sources, 0.0, math.inf).float()

    def along_rows(d: torch.Tensor, cum: torch.Tensor) -> torch.Tensor:
        # Left to right, then right to left on its result; each cummin includes the pixel
        # itself, so neither pass can make a distance longer.
        d = torch.cummin(d - cum, dim=2).values.add_(cum)
        return torch.cummin(d.add_(cum).flip(2), dim=2).values.flip(2).sub_(cum)

    for _ in range(rounds):
        distance = along_rows(distance, cum_x)
        distance = along_rows(distance.transpose(1, 2).contiguous(), cum_y).transpose(1, 2).contiguous()
    return distance


def propagation_grid(shape: tuple[int, int]) -> tuple[int, int]:
    """The grid the propagation runs on: the working grid, shrunk to at most MAX_GRID_PIXELS."""
    h, w = shape
    scale = min(1.0, math.sqrt(MAX_GRID_PIXELS / (h * w)))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _on_grid(l_small: torch.Tensor, ab_small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lightness (h, w) and a map of the working grid (the prediction (2, h, w), or any (C, h, w))
    on the propagation grid."""
    shape = tuple(l_small.shape[-2:])
    grid = propagation_grid(shape)
    lightness = l_small.reshape(1, 1, *shape).float()
    ab = ab_small.reshape(1, -1, *shape).float()
    if grid != shape:
        lightness = F.interpolate(lightness, size=grid, mode="area")
        ab = F.interpolate(ab, size=grid, mode="area")
    return lightness[0, 0], ab[0]


def smoothed(lightness: torch.Tensor, sigma: float) -> torch.Tensor:
    """``lightness`` (h, w) blurred by a Gaussian of ``sigma`` pixels (reflected at the borders)."""
    if sigma <= 0:
        return lightness
    from kornia.filters import gaussian_blur2d

    side = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur2d(lightness[None, None], (side, side), (sigma, sigma), border_type="reflect")[0, 0]


def hint_geometry(hints: Sequence[Hint], full_shape: tuple[int, int], lightness: torch.Tensor,
                  edge_cost: float = DEFAULT_EDGE_COST, smooth: float = DEFAULT_SMOOTH,
                  edge_square: float = DEFAULT_EDGE_SQUARE) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(footprints (k, h, w) bool, geodesic distances (k, h, w)) of the hints on the grid of
    ``lightness`` (h, w), CHUNK hints at a time: the costly part, independent of the colours.
    Distances are measured over the lightness blurred by ``smooth`` pixels."""
    lightness = smoothed(lightness, smooth)
    for start in range(0, len(hints), CHUNK):
        marks = footprints(hints[start : start + CHUNK], full_shape, tuple(lightness.shape))
        yield marks, geodesic_distance(marks, lightness, edge_cost, edge_square=edge_square)


def hint_weight(distance: torch.Tensor, grid_shape: tuple[int, int], reach: float = DEFAULT_REACH) -> torch.Tensor:
    """A hint's weight at each pixel from its geodesic ``distance`` (k, h, w): Gaussian, 1 on its
    footprint, negligible beyond ``reach`` (a fraction of the grid's short side)."""
    return torch.exp(-((distance / (reach * min(grid_shape))) ** 2))


def combine(ab: torch.Tensor, pieces: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
            reach: float = DEFAULT_REACH, flatten: float = DEFAULT_FLATTEN, sharpness: float = DEFAULT_SHARPNESS) -> torch.Tensor:
    """The correction (2, h, w) to the prediction ``ab`` (2, h, w) from ``pieces`` of hints:
    (footprints (k, h, w), geodesic distances (k, h, w), their a*b* (k, 2)). See :func:`correction`."""
    weighted = torch.zeros_like(ab)
    total = torch.zeros(ab.shape[-2:])
    strength = torch.zeros(ab.shape[-2:])
    for marks, distance, targets in pieces:
        weight = hint_weight(distance, tuple(ab.shape[-2:]), reach)  # (k, h, w), 1 on the footprint
        strength = torch.maximum(strength, weight.amax(0))
        # Where reaches overlap, the nearer hint (in geodesic distance) dominates: the
        # residuals are averaged with weight^sharpness.
        vote = weight.pow(sharpness)
        # The prediction under each footprint: what the hint corrects.
        under = (ab[None] * marks[:, None]).flatten(2).sum(2) / marks.flatten(1).sum(1, keepdim=True)  # (k, 2)
        vote_sum = vote.sum(0)
        # flatten = 0: each hint's residual as measured under it, the model's variations kept;
        # flatten = 1: the hint's colour minus the prediction at each pixel (the region takes
        # the hint's chroma itself).
        weighted += torch.einsum("khw,kc->chw", vote, targets - (1 - flatten) * under) - flatten * vote_sum * ab
        total += vote_sum
    # The residuals' average, applied with the strength of the nearest hint: all of it on a
    # hint, fading to none beyond its reach.
    return weighted / total.clamp(min=1e-30) * strength


def correction(l_small: torch.Tensor, ab_small: torch.Tensor, hints: Sequence[Hint], full_shape: tuple[int, int],
               reach: float = DEFAULT_REACH, edge_cost: float = DEFAULT_EDGE_COST, flatten: float = DEFAULT_FLATTEN,
               smooth: float = DEFAULT_SMOOTH, sharpness: float = DEFAULT_SHARPNESS,
               edge_square: float = DEFAULT_EDGE_SQUARE) -> torch.Tensor:
    """The a*b* correction (2, h, w) that the hints make to the prediction ``ab_small`` (2, h, w),
    given the working-resolution lightness ``l_small`` (1, h, w) and the photo's (H, W).

    ``reach``: a hint's Gaussian reach as a fraction of the grid's short side; ``edge_cost``:
    the geodesic cost of one L* unit of lightness change, in grid pixels; ``flatten``: 0 carries
    each hint's residual at its footprint unchanged, 1 pulls each pixel to the hint's colour;
    ``smooth``: the blur (grid pixels) of the lightness the geodesic costs are measured on;
    ``sharpness``: overlapping hints are averaged with their weights to this power;
    ``edge_square``: the geodesic cost of a squared L* change in one step (sharp borders).
    """
    lightness, ab = _on_grid(l_small, ab_small)
    logger.debug("propagating %d hint(s) on a %dx%d grid", len(hints), lightness.shape[1], lightness.shape[0])
    targets = hint_ab(hints).split(CHUNK)
    pieces = ((marks, distance, target) for (marks, distance), target in zip(hint_geometry(hints, full_shape, lightness, edge_cost, smooth, edge_square), targets))
    result = combine(ab, pieces, reach, flatten, sharpness)
    shape = tuple(l_small.shape[-2:])
    if tuple(result.shape[-2:]) != shape:
        result = F.interpolate(result[None], size=shape, mode="bilinear", align_corners=False)[0]
    return result


def apply_hints(l_small: torch.Tensor, ab_small: torch.Tensor, hints: Sequence[Hint], full_shape: tuple[int, int],
                **options: float) -> torch.Tensor:
    """The prediction ``ab_small`` (2, h, w) with the hints' correction added (checked against
    the photo's size first). ``options``: see :func:`correction`."""
    check_hints(hints, full_shape[1], full_shape[0])
    if not hints:
        return ab_small
    return ab_small.float() + correction(l_small, ab_small, hints, full_shape, **options).to(ab_small.device)


def layer_hints(layer: np.ndarray, max_colors: int = 32) -> list[MaskHint]:
    """Mask hints from a painted RGBA layer of the photo's size (the demo's brush strokes): one
    hint per colour among its opaque pixels (alpha >= 128); anti-aliased variants of a colour
    are merged into the ``max_colors`` most common ones."""
    if layer.ndim != 3 or layer.shape[2] != 4:
        raise HintError(f"a painted layer must be an (H, W, 4) RGBA array, got {layer.shape}")
    painted = layer[..., 3] >= 128
    if not painted.any():
        return []
    colors = layer[..., :3][painted].astype(np.int64)
    codes = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    unique, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    keep = np.argsort(-counts)[:max_colors]
    palette = np.stack([(unique[keep] >> 16) & 255, (unique[keep] >> 8) & 255, unique[keep] & 255], axis=1)
    # Each colour goes to the nearest kept one (itself, when kept).
    all_colors = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
    nearest = ((all_colors[:, None, :] - palette[None]) ** 2).sum(2).argmin(1)
    label = np.full(layer.shape[:2], -1, dtype=np.int64)
    label[painted] = nearest[inverse.reshape(-1)]
    return [MaskHint(label == i, tuple(int(c) for c in palette[i])) for i in range(len(palette)) if (label == i).any()]


# Suggested spots (:func:`suggest_points`), chosen on held-out training photos (a probe on 60
# BSDS500/ImageNet photos of the pair set's test split), never on an eval set; measured by
# `python bench/hints.py --parts suggest`.
# The candidate spots: the centres of the largest of SUGGEST_REGIONS regions of even
# lightness (k-means on position and L*, started from a regular grid; as many whatever the
# count asked, so that the first n of more spots are the best n) ...
SUGGEST_REGIONS = 60
SUGGEST_CANDIDATES = 30
SUGGEST_ITERATIONS = 12
# ... each pixel counted by the model's uncertainty there (over its mean) plus this: the parts
# the model is sure of still count a little.
SUGGEST_FLOOR = 0.25
MAX_SUGGESTIONS = 50


def _regions(lightness: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(label of each pixel (h * w,), the pixel nearest each centre (count,)) of ``count``
    k-means regions of the grid ``lightness`` (h, w) in (y, x, L*) space, position and L*
    weighted alike (the photo's long side ~ 100 L* units)."""
    from kornia.contrib import KMeans

    h, w = lightness.shape
    scale = max(h, w)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    features = torch.stack([ys / scale, xs / scale, lightness.float() / 100], -1).reshape(-1, 3)  # (h * w, 3)
    # A regular grid of starting centres, about square cells: the same regions every call.
    rows = max(1, min(h, round(math.sqrt(count * h / w))))
    cols = max(1, min(w, math.ceil(count / rows)))
    cy = ((torch.arange(rows) + 0.5) * h / rows).long().clamp(max=h - 1)
    cx = ((torch.arange(cols) + 0.5) * w / cols).long().clamp(max=w - 1)
    starts = (cy[:, None] * w + cx[None]).reshape(-1)[:count]
    # KMeans moves an emptied cluster to a random pixel from torch's global generator: keep the caller's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        kmeans = KMeans(len(starts), features[starts].clone(), tolerance=1e-6, max_iterations=SUGGEST_ITERATIONS)
        kmeans.fit(features)
    labels, centres = kmeans.cluster_assignments, kmeans.cluster_centers
    nearest = torch.cdist(centres, features).argmin(1)  # the member pixel of each region nearest its centre
    nearest = torch.where(labels[nearest] == torch.arange(len(centres)), nearest, -1)
    return labels, nearest


def _pixel_grid(height: int, width: int, count: int) -> list[tuple[int, int]]:
    """Pixels (x, y) of a ``height`` x ``width`` photo in an even grid of about square cells:
    at least ``count`` distinct ones, or all of them when the photo has fewer."""
    # rows <= height and cols <= width keep them distinct; ceil (not round) makes rows x cols
    # reach count whenever height x width does.
    rows = min(height, math.ceil(math.sqrt(count * height / width)))
    cols = min(width, math.ceil(count / rows))
    return [(int((j + 0.5) * width / cols), int((i + 0.5) * height / rows)) for i in range(rows) for j in range(cols)]


def suggest_points(l_small: torch.Tensor, uncertainty: torch.Tensor | None, full_shape: tuple[int, int],
                   count: int, given: Sequence[Hint] = ()) -> list[tuple[int, int]]:
    """``count`` distinct spots (x, y) in pixels of the photo of size ``full_shape`` (H, W),
    best first, where a point hint would correct the most: each in turn adds the most hint
    weight (as a hint spreads, :func:`correction`) over what the earlier ones, and the hints
    already ``given``, reach, every pixel counted by ``uncertainty`` (h, w) there (None: alike).
    ``l_small``: the working lightness (1, h, w).

    Candidates, in tiers: the centres of the SUGGEST_CANDIDATES largest of the photo's
    SUGGEST_REGIONS regions of even lightness; once all of those are taken, the centres of the
    other regions; then an even grid of the photo's pixels. The regions and every tier are the
    same whatever ``count`` is, so the first n spots of more are the n best: the list is
    nested for every count. A photo with fewer than ``count`` pixels (a tiny one) gives each
    of its pixels once, so fewer spots than asked."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SUGGESTIONS:
        raise OptionError(f"the number of suggested spots must be a whole number from 1 to {MAX_SUGGESTIONS}, got {count!r}")
    shape = tuple(l_small.shape[-2:])
    lightness, weight_map = _on_grid(l_small.cpu(), torch.ones(shape) if uncertainty is None else uncertainty.cpu())
    weight_map = weight_map[0]  # (h, w), on the propagation grid as the lightness
    h, w = lightness.shape
    height, width = full_shape
    # As many regions for every count: more regions (or more candidates) for a larger count
    # would move every spot, the first included.
    labels, nearest = _regions(lightness, SUGGEST_REGIONS)
    sizes = torch.bincount(labels, minlength=len(nearest)).float()
    sizes[nearest < 0] = -1  # a region whose centre is none of its pixels offers no spot
    ranked = [r for r in sizes.argsort(descending=True).tolist() if nearest[r] >= 0]

    def centres(regions: list[int]) -> list[tuple[int, int]]:  # grid pixel centres -> the photo's pixels
        return [(min(width - 1, int((int(nearest[r]) % w + 0.5) * width / w)),
                 min(height - 1, int((int(nearest[r]) // w + 0.5) * height / h))) for r in regions]

    tiers = (lambda: centres(ranked[:SUGGEST_CANDIDATES]), lambda: centres(ranked[SUGGEST_CANDIDATES:]),
             lambda: _pixel_grid(height, width, MAX_SUGGESTIONS))
    importance = weight_map / weight_map.mean().clamp(min=1e-12) + SUGGEST_FLOOR  # (h, w)

    def spread(hints: Sequence[Hint]) -> torch.Tensor:  # (len(hints), h, w): each hint's weight at every pixel
        return torch.cat([hint_weight(distance, (h, w)) for _, distance in hint_geometry(hints, full_shape, lightness)])

    # What the hints already given reach needs no new spot.
    covered = spread(given).amax(0) if given else torch.zeros(h, w)
    spots: list[tuple[int, int]] = []
    for tier in tiers:
        if len(spots) >= count:
            break  # later tiers are only computed when needed: the spots before them do not depend on them
        # Distinct spots: on a photo smaller than the grid several grid pixels fall on one of
        # its pixels. A tier is reached once all the earlier ones are taken, so every earlier spot is in `spots`.
        taken_before = set(spots)
        candidates = [spot for spot in dict.fromkeys(tier()) if spot not in taken_before]
        if not candidates:
            continue
        reach = spread([PointHint(x, y, (0, 0, 0)) for x, y in candidates])
        chosen: list[int] = []
        for _ in range(min(count - len(spots), len(candidates))):
            gain = ((reach - covered).clamp(min=0) * importance).flatten(1).sum(1)
            gain[chosen] = -1.0
            best = int(gain.argmax())
            chosen.append(best)
            covered = torch.maximum(covered, reach[best])
            spots.append(candidates[best])
    return spots


def mark_spots(image: Image.Image, spots: Sequence[tuple[int, int]]) -> Image.Image:
    """An RGB copy of ``image`` with each spot (x, y) ringed and numbered from 1 (the order of
    :func:`suggest_points`): where to give the colours one knows."""
    from PIL import ImageFont

    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    # Sized to the photo, so the marks stay visible when a large photo is shown small.
    radius = max(6, round(0.025 * min(marked.size)))
    line = max(2, round(radius / 6))
    font = ImageFont.load_default(size=max(10, round(1.3 * radius)))
    for number, (x, y) in enumerate(spots, start=1):
        # A white ring inside a black one shows on light and dark parts alike.
        outer = radius + line
        draw.ellipse((x - outer, y - outer, x + outer, y + outer), outline=(0, 0, 0), width=line)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(255, 255, 255), width=line)
        draw.text((x + outer + 2 * line, y - outer - 2 * line), str(number), fill=(255, 255, 255), font=font, stroke_width=line,
                  stroke_fill=(0, 0, 0))
    return marked

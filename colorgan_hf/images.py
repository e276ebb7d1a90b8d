"""Reading images of any mode, size and format into tensors, and writing results safely.

Every failure a user can cause becomes one :class:`~colorgan_hf.errors.ImageLoadError`
whose message names the file and the reason.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError
from .files import atomic_path, input_file_problem

ImageInput = Union[str, bytes, os.PathLike, Image.Image, np.ndarray, IO[bytes], "LoadedImage"]
# What is read as a file path (bytes as os.fsdecode reads them, as the os functions do).
PATH_TYPES = (str, bytes, os.PathLike)
# What the message of an input of no readable type lists.
ACCEPTED_INPUTS = "a path, PIL image, numpy array or binary file object"

# Images above this many pixels are refused before their pixels are decoded (a
# "decompression bomb" is a small file that decodes to gigabytes). Override with the
# COLORGAN_MAX_PIXELS environment variable or the ``max_pixels`` argument.
DEFAULT_MAX_PIXELS = 100_000_000

# Pillow's own bomb check is a process-wide setting (a warning, then an error, above a
# fixed size): it is switched off once, here, and never touched again. The check that
# counts is ours, :func:`_check_pixels`, made per call with the caller's limit from the
# size in the file's header, before any pixel is decoded; concurrent calls with
# different limits cannot disturb each other.
Image.MAX_IMAGE_PIXELS = None

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
UINT16_MAX = 65535.0
UINT8_MAX = 255.0
# How far a float array's pixels may stray outside [0, 1] (arithmetic such as x / 255 * 255 / 255
# can land a hair outside) before it is taken for one in another range (0-255) and refused.
FLOAT_RANGE_TOLERANCE = 1e-3
_PILLOW_MAX_LINE_BITS = 2**31 - 8
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def is_batch(source: object) -> bool:
    """Whether :func:`~colorgan_hf.colorize` reads ``source`` as several photos: a list, a tuple or
    any other iterable of them (a generator, ``Path.glob(...)``, ``map``), as it always has.

    What iterates but is one photo (or none) is not a batch: a path (str, bytes, os.PathLike), the
    bytes of a file, a file object (it iterates over lines of its bytes), a PIL image, a numpy
    array or a torch tensor (they iterate over rows), a mapping (a hints-like dict is no photo list).
    """
    if isinstance(source, (*PATH_TYPES, bytearray, memoryview, Image.Image, np.ndarray, LoadedImage, Mapping)):
        return False
    if _is_file_object(source) or isinstance(source, torch.Tensor):
        return False
    return isinstance(source, Iterable)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every file with an image extension under ``folder``, recursively, in sorted order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def max_pixels_setting() -> int:
    """The pixel limit in force: ``COLORGAN_MAX_PIXELS`` if set (and not empty), else the default."""
    value = os.environ.get("COLORGAN_MAX_PIXELS", "").strip()
    if not value:  # set but empty (``COLORGAN_MAX_PIXELS= colorgan ...``) is unset, as shells mean it
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:  # a limit of 0 or below would refuse every photo, one line each
        raise ImageLoadError(f"COLORGAN_MAX_PIXELS must be a whole number of pixels, at least 1; got {value!r}")
    return limit


@dataclass
class LoadedImage:
    """An image ready for the pipeline, kept in its own depth: no copy is made that is not needed."""

    pixels: torch.Tensor  # (1, H, W) gray or (3, H, W) sRGB; uint8, or float32 in [0, 1] for deeper inputs
    alpha: np.ndarray | None  # (H, W) uint8, or None when the input had no transparency
    name: str  # the file path, or a short description for in-memory inputs

    @property
    def rgb(self) -> torch.Tensor:
        """(3, H, W) float32 sRGB in [0, 1]."""
        values = self.pixels.float().div_(UINT8_MAX) if self.pixels.dtype == torch.uint8 else self.pixels.float()
        return values.expand(3, *values.shape[1:]).contiguous() if values.shape[0] == 1 else values

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL gives it."""
        return self.pixels.shape[2], self.pixels.shape[1]


def _describe(source: ImageInput) -> str:
    if isinstance(source, PATH_TYPES):
        return os.fsdecode(source)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    if _is_file_object(source):
        # open(path, "rb") knows its path; a BytesIO, a socket's file or open(fd) do not.
        name = getattr(source, "name", None)
        return os.fsdecode(name) if isinstance(name, PATH_TYPES) else f"<file object {type(source).__name__}>"
    if isinstance(source, torch.Tensor):
        return f"<tensor {source.dtype} {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def _is_file_object(source: object) -> bool:
    """A file object, as PIL.Image.open takes one: anything with a ``read`` method."""
    return callable(getattr(source, "read", None))


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (set COLORGAN_MAX_PIXELS or max_pixels= to allow more)"
        )


def _open_path(path: Path, max_pixels: int) -> Image.Image:
    name = str(path)
    problem = input_file_problem(path, "an image")
    if problem:
        raise ImageLoadError(f"{name}: {problem}")
    return _open(path, name, max_pixels)


def _warn_if_more_pages(image: Image.Image, name: str) -> None:
    """A TIFF of several pages (a scanned album, a document) is colorized from its first page
    only: said, since the others would otherwise be lost without a word. (An animated GIF's first
    frame is the documented rule, and a phone's MPO JPEG carries a second image that is no page.)"""
    if image.format == "TIFF" and getattr(image, "n_frames", 1) > 1:
        warnings.warn(f"{name}: a TIFF of {image.n_frames} pages; only the first is colorized "
                      "(save each page as its own file to colorize them all)", stacklevel=3)
        image.seek(0)


def _open(source: Path | IO[bytes], name: str, max_pixels: int) -> Image.Image:
    """A path or a binary file object opened and decoded by Pillow, its size checked from the header first."""
    try:
        image = Image.open(source)  # reads the header only
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file, or a format Pillow cannot read") from None
    except Exception as error:  # hostile files make decoders raise all sorts of things
        if isinstance(error, OSError) and error.errno is not None:  # the file system's refusal (permissions, I/O)
            raise ImageLoadError(f"{name}: cannot be read ({type(error).__name__}: {error})") from None
        # A header cut short ("Truncated File Read") is the same damage as data cut short, below.
        raise ImageLoadError(f"{name}: {_corrupt(error)}") from None
    try:
        _check_pixels(image.width, image.height, name, max_pixels)
        _warn_if_more_pages(image, name)
        image.load()
    except ImageLoadError:
        image.close()
        raise
    except Exception as error:
        image.close()
        raise ImageLoadError(f"{name}: {_corrupt(error)}") from None
    return image


def _corrupt(error: Exception) -> str:
    """How a decoder's complaint about the file's own bytes reads, wherever in the file it was met."""
    return f"truncated or corrupt image data ({type(error).__name__}: {error})"


def _load_pil(image: Image.Image, name: str) -> None:
    """Decode a caller's PIL image (lazy until loaded) so that its damage reads as a file's would."""
    try:
        image.load()
    except Exception as error:  # noqa: BLE001 - a decoder's complaint about the file behind the image
        # A closed image ("Operation on closed image"), or a lazy one whose file was closed before it
        # was decoded ("seek of closed file"), is the caller's order of calls, not damage to the file.
        if isinstance(error, ValueError) and "closed" in str(error):
            raise ImageLoadError(f"{name}: cannot be read: the PIL image or its file is closed ({error}); pass it "
                                 "before closing it, or its file's path") from None
        raise ImageLoadError(f"{name}: {_corrupt(error)}") from None


def _pil_to_tensors(image: Image.Image, name: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """Any Pillow mode -> pixels (see :class:`LoadedImage`) and an optional alpha plane."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not cost the user the picture
        pass
    alpha = None
    mode = image.mode
    if mode == "La":  # premultiplied: Pillow converts it only to LA (which it un-premultiplies)
        image = image.convert("LA")
        mode = "LA"
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        alpha = np.array(image.getchannel("A"))
        image = image.convert("RGB")
        mode = "RGB"
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.clip(np.asarray(image).astype(np.float32) / UINT16_MAX, 0.0, 1.0)
        return torch.from_numpy(gray)[None], alpha
    if mode == "F":
        # NaN and inf pixels (a float TIFF may hold them) become black and white, not an IndexError.
        gray = np.nan_to_num(np.asarray(image).astype(np.float32), nan=0.0, posinf=np.float32(np.finfo(np.float32).max), neginf=0.0)
        if gray.size and gray.max() > 1.0:
            gray = gray / UINT8_MAX
        return torch.from_numpy(np.clip(gray, 0.0, 1.0))[None], alpha
    if mode in ("L", "1"):
        return torch.from_numpy(np.array(image.convert("L")))[None], alpha
    try:
        rgb = np.array(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ImageLoadError(f"{name}: cannot convert mode {image.mode} to RGB ({error})") from None
    return torch.from_numpy(rgb).permute(2, 0, 1), alpha


def _array_to_tensors(array: np.ndarray, name: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """(H, W), (H, W, 1..4) arrays of bool, integer or float -> pixels and alpha."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageLoadError(f"{name}: expected an (H, W) or (H, W, C) array with C in 1..4, got shape {array.shape}")
    if array.dtype == np.uint8:
        values = array
    elif array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / UINT16_MAX
    elif np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        # Clipping a 0-255 array to [0, 1] would give an almost white photo without a word.
        if low < -FLOAT_RANGE_TOLERANCE or high > 1.0 + FLOAT_RANGE_TOLERANCE:
            raise ImageLoadError(f"{name}: float pixels must be in [0, 1], got values from {low:g} to {high:g}: "
                                 "divide 8-bit values by 255 (16-bit ones by 65535)")
    elif np.issubdtype(array.dtype, np.integer):
        # Other integer types (int32 from arithmetic, int64 from np.array of a list) are read as 8-bit,
        # which they are only when every value fits: anything else was 16-bit or scaled data.
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > UINT8_MAX:
            raise ImageLoadError(f"{name}: {array.dtype} pixels are read as 8-bit and must be in 0-255, got values "
                                 f"from {low} to {high}: pass 16-bit pixels as uint16 (array.astype(np.uint16)), "
                                 "others as floats in [0, 1]")
        values = array.astype(np.uint8)
    else:
        raise ImageLoadError(f"{name}: unsupported array dtype {array.dtype}")
    if values.dtype != np.uint8:
        values = np.clip(values, 0.0, 1.0)
    alpha = None
    if values.ndim == 3 and values.shape[2] in (2, 4):
        last = values[:, :, -1]
        alpha = last.copy() if values.dtype == np.uint8 else np.round(last * UINT8_MAX).astype(np.uint8)
        values = values[:, :, :-1]
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim == 2:
        return torch.from_numpy(np.array(values))[None], alpha
    return torch.from_numpy(np.array(values)).permute(2, 0, 1), alpha


def load_image(source: ImageInput, max_pixels: int | None = None) -> LoadedImage:
    """Read a path (str, bytes or os.PathLike), PIL image, numpy array or binary file object (anything
    with ``read``, as :func:`PIL.Image.open` takes: ``open(path, "rb")``, ``io.BytesIO(data)``) of any
    mode into a :class:`LoadedImage` (one is passed through).

    EXIF orientation is applied, animated images give their first frame, an alpha channel
    is kept aside, 16-bit, palette, CMYK, LA and 1-bit images are handled. Arrays are
    (H, W) or (H, W, C) with C in 1..4 (the last of 2 or 4 is alpha): ``uint8``; ``uint16``
    (16-bit); ``bool``; floats in [0, 1] (NaN reads as 0, inf as 1; values outside [0, 1] are
    refused, not clipped: an array in 0-255 would otherwise come out almost white); any
    other integer type is read as 8-bit and refused unless every value is in 0-255. A file
    object is read from its start and named by its ``name`` when it has one. Raises
    :class:`ImageLoadError` naming the file and the reason on anything unreadable.
    """
    limit = max_pixels_setting() if max_pixels is None else max_pixels
    if isinstance(source, LoadedImage):  # already read: callers that need the pixels too decode once
        _check_pixels(*source.size, source.name, limit)
        return source
    name = _describe(source)
    if isinstance(source, PATH_TYPES):
        if "\0" in name:  # no path holds one: most likely a file's contents passed where its name belongs
            raise ImageLoadError(f"not a file path ({len(name)} characters with a NUL byte among them): for a file's "
                                 "contents pass io.BytesIO(data)")
        pixels, alpha = _decode(_open_path(Path(name), limit), name)
    elif isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, name, limit)
        _load_pil(source, name)
        pixels, alpha = _decode(source, name)
    elif isinstance(source, np.ndarray):
        if source.ndim >= 2:
            _check_pixels(source.shape[1], source.shape[0], name, limit)
        pixels, alpha = _array_to_tensors(source, name)
    elif _is_file_object(source):
        if getattr(source, "closed", False):  # else Pillow's "I/O operation on closed file" would read as damage
            raise ImageLoadError(f"{name}: the file object is closed: pass it while it is open")
        if isinstance(source, io.TextIOBase):  # its read() gives str, which no decoder takes
            raise ImageLoadError(f"{name}: file opened in text mode: open it in binary mode, open(path, \"rb\")")
        pixels, alpha = _decode(_open(source, name, limit), name)
    elif isinstance(source, torch.Tensor):
        # Not guessed: a tensor may be (C, H, W) or (H, W, C), in [0, 1] or 0-255.
        raise ImageLoadError(f"{name}: expected {ACCEPTED_INPUTS}, got a torch tensor (its layout and range are "
                             "not guessed): pass an (H, W) or (H, W, C) numpy array, such as "
                             "tensor.permute(1, 2, 0).cpu().numpy() of a (C, H, W) tensor in [0, 1]")
    else:
        if isinstance(source, (bytearray, memoryview)):
            hint = ": for a file's contents pass io.BytesIO(data)"
        else:
            hint = ": for several photos pass a list" if hasattr(source, "__iter__") else ""
        raise ImageLoadError(f"expected {ACCEPTED_INPUTS}, got {type(source).__name__}{hint}")
    return LoadedImage(pixels=pixels, alpha=alpha, name=name)


def _decode(image: Image.Image, name: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """:func:`_pil_to_tensors`, with whatever a hostile image makes Pillow raise as an ImageLoadError."""
    try:
        return _pil_to_tensors(image, name)
    except ImageLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - hostile files make decoders and converters raise all sorts of things
        raise ImageLoadError(f"{name}: cannot be decoded ({type(error).__name__}: {error})") from None


def to_pil(rgb: torch.Tensor, alpha: np.ndarray | None = None, channels_last: bool = False) -> Image.Image:
    """(3, H, W) RGB (or (H, W, 3) with ``channels_last``), uint8 or float in [0, 1] (+ optional
    (H, W) uint8 alpha) -> 8-bit PIL image."""
    if rgb.dtype != torch.uint8:
        rgb = rgb.mul(UINT8_MAX).add_(0.5).clamp_(0, UINT8_MAX).to(torch.uint8)
    array = rgb.numpy() if channels_last else rgb.permute(1, 2, 0).numpy()
    if array.shape[1] * 8 * (3 if alpha is None else 4) > _PILLOW_MAX_LINE_BITS:
        # Pillow's raw decoder counts a line's bits in an int: an RGB line over ~89 million
        # pixels overflows it. One channel at a time stays within it.
        planes = [Image.fromarray(np.ascontiguousarray(array[:, :, c])) for c in range(3)]
        if alpha is not None:
            planes.append(Image.fromarray(np.ascontiguousarray(alpha)))
        return Image.merge("RGB" if alpha is None else "RGBA", planes)
    if alpha is not None:
        return Image.fromarray(np.dstack([array, alpha]), mode="RGBA")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


# What the CLI may write (extension -> Pillow format): each keeps the photo's size and full
# colour. GIF (256 colours) and ICO (resized to at most 256 pixels) are not among them.
WRITABLE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP"}
DEFAULT_QUALITY = 95
# EXIF tags of the first IFD that describe the photo (not the file's layout): kept.
_EXIF_KEEP = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298}
_EXIF_ORIENTATION = 0x0112
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif (dates, exposure, ...) and GPS


@dataclass
class ImageMetadata:
    """What an archive copy of a photo keeps: EXIF (upright: orientation 1), an RGB ICC
    profile, DPI, and for a JPEG its quantization tables and subsampling."""

    format: str | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    qtables: dict | None = None
    subsampling: int | None = None


def read_metadata(path: str | os.PathLike) -> ImageMetadata:
    """The metadata of the file at ``path`` (its header only); empty if it cannot be read."""
    try:
        with Image.open(path) as image:
            meta = ImageMetadata(format=image.format)
            source = image.getexif()
            exif = Image.Exif()
            for tag in _EXIF_KEEP & set(source):
                exif[tag] = source[tag]
            for ifd in _EXIF_SUB_IFDS:
                try:
                    sub = source.get_ifd(ifd)
                except Exception:  # a broken EXIF block must not cost the photo
                    sub = None
                if sub:
                    exif[ifd] = dict(sub)
            if len(exif):
                exif[_EXIF_ORIENTATION] = 1  # the pipeline has applied the rotation
                meta.exif = exif.tobytes()
            icc = image.info.get("icc_profile")
            # A gray (or CMYK) profile cannot describe the RGB result: only an RGB one is kept.
            meta.icc_profile = icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None
            dpi = image.info.get("dpi")
            meta.dpi = tuple(float(v) for v in dpi) if dpi and len(dpi) == 2 and all(v > 0 for v in dpi) else None
            if image.format == "JPEG":
                from PIL import JpegImagePlugin

                tables = getattr(image, "quantization", None)
                sampling = JpegImagePlugin.get_sampling(image)
                if tables and len(tables) >= 2 and sampling in (0, 1, 2):  # has chroma tables to reuse
                    meta.qtables, meta.subsampling = dict(tables), sampling
            return meta
    except Exception:
        return ImageMetadata()


def _save_options(fmt: str, metadata: ImageMetadata | None, quality: int | None) -> dict:
    meta = metadata or ImageMetadata()
    options: dict = {}
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF") and meta.exif:
        options["exif"] = meta.exif
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF") and meta.icc_profile:
        options["icc_profile"] = meta.icc_profile
    if fmt in ("JPEG", "PNG", "TIFF", "BMP") and meta.dpi:
        options["dpi"] = meta.dpi
    if fmt == "JPEG":
        if quality is None and meta.qtables:  # the scan's own quantization: no worse than it came
            options.update(qtables=meta.qtables, subsampling=meta.subsampling)
        else:
            options["quality"] = quality or DEFAULT_QUALITY
    elif fmt == "WEBP":
        options["quality"] = quality or DEFAULT_QUALITY
    return options


def save_image_atomic(image: Image.Image, path: str | os.PathLike, *, metadata: ImageMetadata | None = None,
                      quality: int | None = None) -> Path:
    """Save ``image`` to ``path`` via a temporary file in the same folder and a rename.

    A crash or a full disk never leaves a half-written file under the final name. The
    format follows the extension; JPEG cannot hold alpha, so it is flattened onto white.
    ``metadata`` (see :func:`read_metadata`) is written where the format can hold it; JPEG
    and WebP are written at ``quality`` (default: a JPEG source's own quantization, else 95).
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageLoadError(f"{path}: unknown image extension {path.suffix!r}")
    if fmt == "JPEG" and image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    options = _save_options(fmt, metadata, quality)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                image.save(handle, format=fmt, **options)
    except (MemoryError, ValueError, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # a real file-system error (full disk, no permission) keeps its own type
        raise ImageLoadError(f"{path}: cannot be written as {fmt} ({type(error).__name__}: {error})") from None
    return path

"""colorgan-hf demo: upload an old black-and-white photo, compare before and after, download it.

    python space/app.py [--model PATH_OR_HUB_ID] [--port 7860]

The app holds no model logic: it loads generators once and calls ``colorgan_hf.colorize``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import gradio as gr

try:
    import colorgan_hf
except ImportError:
    sys.exit("space/app.py: the colorgan_hf package is not installed; from the repository run "
             "`python3 -m pip install -e \".[space]\"` (README, Quick start), or use `colorgan space-export DIR`")

import numpy as np
from PIL import Image, ImageOps

from colorgan_hf import ColorGANError, colorize, load_model, suggest_hints
from colorgan_hf.images import load_image, save_image_atomic
from colorgan_hf.pipeline import DEFAULT_SIZE, check_options
from colorgan_hf.registry import shipped_models
from colorgan_hf.video import DEFAULT_VIDEO_MODEL

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
API_NAME = "colorize"
BATCH_API_NAME = "colorize_batch"
AUTO_CONTRAST_INFO = ("For a faded or low-contrast print: the model is shown its tones stretched from black to white, "
                      "which it colours more truly. The result keeps the photo's own tones.")
MB = 1024 * 1024


def _size_setting(name: str, default: str) -> tuple[str, int]:
    """A size from the environment ("25mb", "2gb", or bytes): (as written, bytes)."""
    from gradio.utils import _parse_file_size

    text = os.environ.get(name, default)
    return text, int(_parse_file_size(text) if not text.isdigit() else int(text))


# Limits of the public demo; each can be changed by an environment variable.
MAX_UPLOAD, MAX_UPLOAD_BYTES = _size_setting("COLORGAN_SPACE_MAX_UPLOAD", "25mb")  # one upload request, all its files together
MAX_DISK, MAX_DISK_BYTES = _size_setting("COLORGAN_SPACE_MAX_DISK", "2gb")  # everything the app keeps on disk at once
MAX_PIXELS = int(os.environ.get("COLORGAN_SPACE_MAX_PIXELS", 50_000_000))
CONCURRENCY = int(os.environ.get("COLORGAN_SPACE_CONCURRENCY", 2))
QUEUE_SIZE = int(os.environ.get("COLORGAN_SPACE_QUEUE_SIZE", 100))
FILE_TTL_S = float(os.environ.get("COLORGAN_SPACE_FILE_TTL", 900))  # uploads and results are removed after this at the latest
BATCH_MAX_FILES = int(os.environ.get("COLORGAN_SPACE_BATCH_MAX_FILES", 20))
# A result needs at most this many bytes a pixel on disk (an 8-bit RGB PNG is at most ~3,
# the gray JPEG preview well under 1): what a request reserves before it runs.
DISK_BYTES_PER_PIXEL = 4
# Multipart framing around the files of one upload request.
MULTIPART_SLACK = 64 * 1024
DEFAULT_LABEL = "default (ours)"
VIVID_LABEL = "vivid (bolder colours, more often wrong)"
PAPER_LABEL = "paper's reproduction (for comparison)"
MODEL_INFO = ("Use the default. Vivid paints bolder colours, more of them wrong; the paper's reproduction (its recipe as "
              "written, trained as far as our compute allowed) is shown only for comparison.")

DESCRIPTION = f"""
# colorgan-hf: colorize black-and-white photos

Upload an old photo (or paste one, or use the webcam), press **Colorize**, and drag the
slider to compare. The result keeps your photo's full resolution and every detail of its
lightness: only the colours are predicted. Photos up to {MAX_UPLOAD.upper()} and
{MAX_PIXELS / 1e6:.0f} megapixels; the **Batch** tab takes up to {BATCH_MAX_FILES} photos
at once ({MAX_UPLOAD.upper()} in all) and gives back a zip.
"""

# The one answer to any image path that is not a file of Gradio's own upload cache: it says
# nothing about the path (whether it exists, is a folder, or is an image).
NOT_AN_UPLOAD = "This photo was not uploaded to the demo: upload the file, then press Colorize."
DISK_FULL = "The demo has no disk space left for this right now: try again in a few minutes, or a smaller photo."
NO_PHOTO = "Upload a photo first."


def upload_cache() -> Path:
    """Gradio's upload cache, resolved (the app's private folder once :func:`use_private_cache` ran)."""
    from gradio.utils import get_upload_folder

    return Path(os.path.realpath(get_upload_folder()))


def checked_upload(path: str | os.PathLike) -> str:
    """``path`` if its real path (symlinks resolved) is a regular file inside Gradio's upload
    cache; anything else raises one message that says nothing about the path.

    Gradio checks uploaded paths only when the API payload carries ``meta``: a bare
    ``{"path": "/any/file"}`` would otherwise reach the app as it is.
    """
    try:
        real = Path(os.path.realpath(os.fspath(path)))
        inside = real.is_relative_to(upload_cache()) and real != upload_cache() and real.is_file()
    except (OSError, TypeError, ValueError):
        inside = False
    if not inside:
        raise gr.Error(NOT_AN_UPLOAD, print_exception=False)
    return str(real)


class UploadedImage(gr.Image):
    """``gr.Image`` that hands the app the uploaded file itself, undecoded, and only an upload.

    Gradio's own preprocessing decodes (and re-encodes) the upload: it would drop 16-bit
    depth and fail with a generic "Error" on a bad file. The package reads the original file
    and says clearly what is wrong with it.
    """

    @classmethod
    def get_block_name(cls) -> str:
        return "image"

    def preprocess(self, payload) -> str | None:
        return None if payload is None else checked_upload(payload.path)


class UploadedFiles(gr.File):
    """``gr.File`` (several files) whose every path must be an upload, as :class:`UploadedImage`."""

    @classmethod
    def get_block_name(cls) -> str:
        return "file"

    def preprocess(self, payload) -> list[str] | None:
        files = super().preprocess(payload)
        if files is None:
            return None
        return [checked_upload(path) for path in (files if isinstance(files, list) else [files])]


# Measured (model card, "Input resizing"): 128-256 colour alike, above 256 worse, since the network
# learned objects at 256; a larger number is not a sharper result (the photo keeps its own detail).
SIZE_INFO = (f"The size the model looks at, not the result's: {DEFAULT_SIZE} suits most photos, and a larger one "
             "does not make it sharper (the download keeps your photo's full resolution).")


class Storage:
    """Everything the app writes lives in one private folder (Gradio's upload cache, pointed
    there by :func:`use_private_cache`), bounded in total by ``limit`` bytes.

    What is there when the app starts (the examples Gradio copied in) stays. Uploads and
    results are removed when they are ``ttl`` seconds old, a session's results when it
    makes its next request or closes the page, the oldest first whenever a new upload or
    result needs the room, and the whole folder at exit.
    """

    def __init__(self, root: Path, limit: int, ttl: float) -> None:
        self.root, self.limit, self.ttl = root, limit, ttl
        self.permanent: set[str] = set()
        self.lock = threading.Lock()
        # A session's latest result folder for each tab: a result on one tab is still there (to
        # download, or running) while another tab is used.
        self.session_results: dict[tuple[str, str], Path] = {}
        self.in_use: list[Path] = []  # files of requests running now: never removed under them

    @contextlib.contextmanager
    def using(self, *paths: str | os.PathLike):
        """Protect ``paths`` (and the folders holding them) from removal while the block runs."""
        real = [Path(os.path.realpath(p)) for p in paths]
        with self.lock:
            self.in_use.extend(real)
        try:
            yield
        finally:
            with self.lock:
                for path in real:
                    self.in_use.remove(path)

    def freeze(self) -> None:
        """Mark what is in the folder now (the examples) as never to be removed."""
        self.permanent = {child.name for child in self.root.iterdir()}

    @staticmethod
    def _size(path: Path) -> int:
        if path.is_file():
            return path.stat().st_size
        total = 0
        for folder, _, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def usage(self) -> int:
        return self._size(self.root) if self.root.exists() else 0

    def _remove(self, path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def make_room(self, need: int) -> bool:
        """Remove expired entries, then the oldest, until ``need`` more bytes fit; False if they cannot.
        Nothing a running request uses is removed."""
        if need > self.limit:
            return False
        with self.lock:
            keep_paths = list(self.in_use)
            entries = []
            cutoff = time.time() - self.ttl
            for child in self.root.iterdir():
                if child.name in self.permanent or any(p == child or p.is_relative_to(child) for p in keep_paths):
                    continue
                try:
                    mtime = child.stat().st_mtime
                except OSError:
                    continue
                if mtime < cutoff:
                    self._remove(child)
                else:
                    entries.append((mtime, child))
            used = self.usage()
            for _, child in sorted(entries):
                if used + need <= self.limit:
                    break
                used -= self._size(child)
                self._remove(child)
            return used + need <= self.limit

    def _remove_unless_in_use(self, folder: Path) -> None:
        """Remove a result folder that no running request uses (one that is, make_room or the
        TTL removes later)."""
        with self.lock:
            busy = any(p == folder or p.is_relative_to(folder) for p in self.in_use)
        if not busy:
            self._remove(folder)

    def new_result_dir(self, session: str | None, need: int, tab: str) -> Path:
        """A fresh folder for one request's results, with ``need`` bytes of room made for it;
        the session's previous results on the same ``tab`` (already served) are removed, its
        results on the other tabs kept."""
        with self.lock:
            previous = self.session_results.pop((session, tab), None) if session else None
        if previous is not None:
            self._remove_unless_in_use(previous)
        if not self.make_room(need):
            raise gr.Error(DISK_FULL, print_exception=False)
        folder = self.root / f"result-{uuid.uuid4().hex}"
        folder.mkdir()
        if session:
            with self.lock:
                self.session_results[(session, tab)] = folder
        return folder

    def end_session(self, session: str | None) -> None:
        with self.lock:
            keys = [key for key in self.session_results if key[0] == session] if session else []
            previous = [self.session_results.pop(key) for key in keys]
        for folder in previous:
            self._remove_unless_in_use(folder)

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class UploadLimit:
    """ASGI middleware in front of Gradio: a request body (an ``/upload`` of several files
    included) is bounded as a whole, and an upload is refused when the disk budget cannot
    take it. Gradio's own ``max_file_size`` bounds each file, not the request."""

    def __init__(self, app, max_body: int, storage: Storage | None) -> None:
        self.app, self.max_body, self.storage = app, max_body, storage

    async def _refuse(self, send, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
            return await self._refuse(send, 411, "A request body needs a Content-Length here.")
        size = int(length) if length and length.isdigit() else 0
        if size > self.max_body + MULTIPART_SLACK:
            return await self._refuse(send, 413, f"The upload exceeds the demo's limit of {MAX_UPLOAD.upper()} per request "
                                                 "(all its files together).")
        if self.storage is not None and scope["path"].endswith("/upload"):
            if not self.storage.make_room(size):
                return await self._refuse(send, 507, DISK_FULL)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body + MULTIPART_SLACK:
                raise ValueError("request body over the limit")
            return message

        return await self.app(scope, counted, send)


def load_models(default: str | None) -> dict[str, colorgan_hf.ColorGenerator]:
    """The generators the page offers, loaded once at start-up."""
    models = {DEFAULT_LABEL: load_model(default or "default")}
    if "vivid" in shipped_models():
        models[VIVID_LABEL] = load_model("vivid")
    if "paper" in shipped_models():
        models[PAPER_LABEL] = load_model("paper")
    return models


def load_video_models(default: str | None, models: dict[str, colorgan_hf.ColorGenerator]) -> dict[str, colorgan_hf.ColorGenerator]:
    """The video tab's generators: with the shipped default, its wider network alone (``vivid``, what
    ``colorize_video`` uses unless told, two-thirds of the pair's FLOPs per frame), and then no
    separate vivid choice (it would be the same network twice); the others as the page's."""
    if default in (None, "default") and DEFAULT_VIDEO_MODEL in shipped_models():
        others = {label: model for label, model in models.items() if label != DEFAULT_LABEL}
        if DEFAULT_VIDEO_MODEL == "vivid":
            others.pop(VIVID_LABEL, None)
        return {DEFAULT_LABEL: load_model(DEFAULT_VIDEO_MODEL), **others}
    return models


# The package speaks to developers; the page to people with a family photo.
PLAIN_WORDS = {"not an image file, or a format Pillow cannot read":
               "not an image file, or not a kind of photo this page can open (JPEG, PNG, TIFF, WebP, BMP and GIF are)"}


def readable(error: Exception, upload: str) -> str:
    """The package's error with the server's temporary path replaced by the file's own name, in plain words."""
    message = str(error).replace(upload, Path(upload).name)
    for technical, plain in PLAIN_WORDS.items():
        message = message.replace(technical, plain)
    return message


def gray_preview(path: str) -> Image.Image:
    """The photo as the person sees it (EXIF rotation applied), in gray, at full size: 8-bit
    photos through Pillow (no float copy of a 50 MP photo), deeper ones through the package.
    A photo with transparency keeps it ("LA"), as the colorized one does: the pixels it hides
    are not shown in the "before" either."""
    with Image.open(path) as image:
        if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            try:
                image = ImageOps.exif_transpose(image)
            except Exception:  # a broken EXIF block must not cost the preview
                pass
            if "A" in image.getbands() or "transparency" in image.info:
                return image.convert("RGBA").convert("LA")
            return image.convert("L")
    pixels = load_image(path, max_pixels=MAX_PIXELS).pixels[0]
    return Image.fromarray(pixels.float().mul(255).add(0.5).clamp(0, 255).byte().numpy(), mode="L")


def pixels_of(path: str) -> int:
    """The pixel count read from the file's header (nothing decoded); 0 if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # unreadable: load_image says why, in its own words
        return 0


def check_model(models: dict[str, colorgan_hf.ColorGenerator], model_name: str) -> None:
    """Every tab's handler: a model name the page never offered is a message, not a KeyError."""
    if model_name not in models:
        raise gr.Error(f"Unknown model {model_name!r}.", print_exception=False)


def checked_saturation(saturation: float) -> float:
    """Every tab's handler: the saturation as a number, refused as the package refuses it (negative, NaN or
    infinite) before any work; the slider cannot send such a value, a call of the API can."""
    try:
        value = float(saturation)
        check_options(value, None)
    except ValueError as error:  # OptionError is one, as is float()'s own
        message = str(error)
        raise gr.Error(f"{message[:1].upper()}{message[1:]}.", print_exception=False) from None
    return value


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def make_handler(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage):
    def run(image: str | None, size: int, saturation: float, model_name: str, auto_contrast: bool = False,
            request: gr.Request = None):
        start = time.perf_counter()
        if not image:
            raise gr.Error(NO_PHOTO, print_exception=False)
        check_model(models, model_name)
        saturation = checked_saturation(saturation)
        with storage.using(image):
            return colorize_one(image, size, saturation, model_name, bool(auto_contrast), session_of(request), start)

    def colorize_one(image: str, size: int, saturation: float, model_name: str, auto_contrast: bool, session: str | None,
                     start: float):
        try:
            pixels = pixels_of(image)
            if not 0 < pixels <= MAX_PIXELS:
                load_image(image, max_pixels=MAX_PIXELS)  # the package's clear message: unreadable, or over the limit
            # Each request gets its own folder inside the private cache (Gradio serves it as it
            # is, without a copy): concurrent uploads of same-named photos never share a file.
            request_dir = storage.new_result_dir(session, pixels * DISK_BYTES_PER_PIXEL, "photo")
            with storage.using(request_dir):
                after = colorize(image, models[model_name], size=int(size), saturation=saturation, max_pixels=MAX_PIXELS,
                                 auto_contrast=auto_contrast)
                width, height = after.size
                stem = Path(image).stem
                # The slider's "after" and the download are the same full-resolution PNG.
                download = save_image_atomic(after, request_dir / f"{stem}_color.png")
                del after  # the gray preview is decoded once the result is written: their memory never adds up
                preview = gray_preview(image)
                # JPEG for the usual gray preview (small); PNG where it must keep the photo's transparency.
                before = save_image_atomic(preview, request_dir / f"{stem}_gray.{'png' if preview.mode == 'LA' else 'jpg'}")
        except ColorGANError as error:
            raise gr.Error(readable(error, image), print_exception=False) from None
        except OSError as error:
            raise gr.Error(f"{Path(image).name}: could not be colorized ({type(error).__name__})", print_exception=False) from None
        elapsed = time.perf_counter() - start
        # The settings this result was made with: a setting changed since shows until Colorize is pressed again.
        settings = f"working size {int(size)}, saturation {saturation:g}" + (", faded photo" if auto_contrast else "")
        info = (f"Colorized {width}x{height} ({width * height / 1e6:.1f} MP) with the {model_name} model ({settings}): "
                f"{elapsed:.2f} s on the server, reading and writing the files included.")
        return (str(before), str(download)), str(download), info

    return run


def make_batch_handler(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage):
    def run_batch(files: list[str] | None, size: int, saturation: float, model_name: str, auto_contrast: bool = False,
                  request: gr.Request = None):
        start = time.perf_counter()
        if not files:
            raise gr.Error("Upload one or more photos first.", print_exception=False)
        if len(files) > BATCH_MAX_FILES:
            raise gr.Error(f"{len(files)} photos: the batch takes at most {BATCH_MAX_FILES} at once.", print_exception=False)
        check_model(models, model_name)
        saturation = checked_saturation(saturation)
        need = sum(min(pixels_of(f), MAX_PIXELS) for f in files) * DISK_BYTES_PER_PIXEL
        with storage.using(*files):
            request_dir = storage.new_result_dir(session_of(request), need, "batch")
            with storage.using(request_dir):
                return colorize_all(files, request_dir, size, saturation, model_name, bool(auto_contrast), start)

    def colorize_all(files: list[str], request_dir: Path, size: int, saturation: float, model_name: str, auto_contrast: bool,
                     start: float):
        archive = request_dir / "colorized.zip"
        done, failures, names = 0, [], set()
        # One photo at a time: the memory of a batch is that of its largest photo.
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as bundle:
            for path in files:
                try:
                    result = colorize(path, models[model_name], size=int(size), saturation=saturation, max_pixels=MAX_PIXELS,
                                      auto_contrast=auto_contrast)
                except ColorGANError as error:
                    failures.append(readable(error, path))
                    continue
                stem, n = Path(path).stem, 1
                out_name = f"{stem}_color.png"
                while out_name in names:
                    n += 1
                    out_name = f"{stem}_{n}_color.png"
                names.add(out_name)
                # Dated now, not zipfile's default of 1980-01-01, which is what unzipping would show.
                member = zipfile.ZipInfo(out_name, date_time=time.localtime()[:6])
                with bundle.open(member, "w", force_zip64=True) as handle:
                    result.save(handle, format="PNG")
                done += 1
            if failures:
                bundle.writestr(zipfile.ZipInfo("errors.txt", date_time=time.localtime()[:6]), "\n".join(failures) + "\n")
        elapsed = time.perf_counter() - start
        lines = [f"Colorized {done} of {len(files)} photo(s) in {elapsed:.2f} s on the server."]
        lines += [f"- {line}" for line in failures]
        return str(archive), "\n".join(lines)

    return run_batch


HINTS_API_NAME = "colorize_hints"
SUGGEST_API_NAME = "suggest_hints"
SUGGEST_COUNT, SUGGEST_MAX = 5, 10
# The brush's swatches (its colour picker offers any other colour).
HINT_COLORS = ["#c0392b", "#e67e22", "#f1c40f", "#27ae60", "#2e86c1", "#8e44ad", "#8b5a2b", "#f0c8a0"]
HINTS_HELP = """Upload a photo, then paint on it with the brush: a stroke (or a click, for a point) in a colour
says "this was that colour". Only the colour's chroma is used; the photo keeps its own lightness, and each hint
fills the region it belongs to, up to its lightness edges. The result updates after each stroke; **Clear hints**
removes them; changing the model, working resolution, saturation or the Faded photo box keeps them.
Not sure where to start? **Where should I paint?** rings the spots where a colour you know would correct the
most (where the model is least sure, one spot per large region, away from what you painted): give the colours
you know there, 1 first, then ask again."""


class UploadedEditor(gr.ImageEditor):
    """``gr.ImageEditor`` whose photo and painted layers must be uploads (as :class:`UploadedImage`),
    the photo refused above MAX_PIXELS before Gradio decodes it."""

    @classmethod
    def get_block_name(cls) -> str:
        return "imageeditor"

    def preprocess(self, payload):
        if payload is not None and payload.id is None:
            for item in [payload.background, payload.composite, *(payload.layers or [])]:
                if item is not None and getattr(item, "path", None):
                    checked_upload(item.path)
            if payload.background is not None and payload.background.path and pixels_of(payload.background.path) > MAX_PIXELS:
                raise gr.Error(f"The photo is over the demo's limit of {MAX_PIXELS / 1e6:.0f} megapixels.", print_exception=False)
        return super().preprocess(payload)


def editor_hints(editor: dict) -> tuple[np.ndarray, list]:
    """The photo (H, W, 3) uint8 and the colour hints painted on it (one mask hint per brush colour)."""
    from colorgan_hf.hints import layer_hints

    background = np.asarray(editor["background"])
    photo = background[..., :3] if background.ndim == 3 else np.repeat(background[..., None], 3, axis=2)
    hints = []
    for layer in editor.get("layers") or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue
        if layer.shape[:2] != photo.shape[:2]:  # a canvas of another size: strokes scaled onto the photo
            layer = np.asarray(Image.fromarray(layer).resize((photo.shape[1], photo.shape[0]), Image.Resampling.NEAREST))
        hints += layer_hints(layer)
    return np.ascontiguousarray(photo), hints


def place(x: int, y: int, width: int, height: int) -> str:
    """Where (x, y) lies in a photo, in the words a person uses ("top left", "centre"): pixel
    coordinates alone mean little to someone looking at a family photo."""
    row = ("top", "", "bottom")[min(2, 3 * y // max(1, height))]
    column = ("left", "", "right")[min(2, 3 * x // max(1, width))]
    return f"{row} {column}".strip() or "centre"


def make_hints_handler(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage, live: bool = False):
    """Colorize the editor's photo with its painted hints. ``live`` (on each stroke or setting
    change): no photo yet gives an empty result rather than an error."""

    def run_hints(editor: dict | None, size: int, saturation: float, model_name: str, auto_contrast: bool = False,
                  request: gr.Request = None):
        start = time.perf_counter()
        if not editor or editor.get("background") is None:
            if live:
                return CLEAR
            raise gr.Error(NO_PHOTO, print_exception=False)
        check_model(models, model_name)
        saturation = checked_saturation(saturation)
        photo, hints = editor_hints(editor)
        height, width = photo.shape[:2]
        try:
            after = colorize(photo, models[model_name], size=int(size), saturation=saturation, hints=hints or None,
                             max_pixels=MAX_PIXELS, auto_contrast=bool(auto_contrast))
        except ColorGANError as error:
            raise gr.Error(str(error), print_exception=False) from None
        request_dir = storage.new_result_dir(session_of(request), width * height * DISK_BYTES_PER_PIXEL, "hints")
        with storage.using(request_dir):
            download = save_image_atomic(after, request_dir / "photo_hints_color.png")
            before = save_image_atomic(Image.fromarray(photo).convert("L"), request_dir / "photo_gray.jpg")
        elapsed = time.perf_counter() - start
        info = (f"Colorized {width}x{height} with {len(hints)} hint colour(s) at working size {int(size)} and the "
                f"{model_name} model: {elapsed:.2f} s on the server.")
        return (str(before), str(download)), str(download), info

    return run_hints


def make_suggest_handler(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage):
    """The editor's photo with the spots where a known colour would help most ringed and numbered,
    away from what the strokes already painted reach."""
    from colorgan_hf.hints import mark_spots

    def run_suggest(editor: dict | None, size: int, model_name: str, auto_contrast: bool = False, count: int = SUGGEST_COUNT,
                    request: gr.Request = None):
        if not editor or editor.get("background") is None:
            raise gr.Error(NO_PHOTO, print_exception=False)
        check_model(models, model_name)
        if not isinstance(count, (int, float)) or not 1 <= count <= SUGGEST_MAX or count != int(count):
            raise gr.Error(f"The number of spots must be a whole number from 1 to {SUGGEST_MAX}.", print_exception=False)
        photo, painted = editor_hints(editor)
        height, width = photo.shape[:2]
        try:
            # Where the strokes already painted reach needs no new spot: the button answers "where next?".
            spots = suggest_hints(photo, models[model_name], int(count), size=int(size), max_pixels=MAX_PIXELS,
                                  auto_contrast=bool(auto_contrast), hints=painted or None)
        except ColorGANError as error:
            raise gr.Error(str(error), print_exception=False) from None
        request_dir = storage.new_result_dir(session_of(request), width * height * DISK_BYTES_PER_PIXEL, "suggest")
        with storage.using(request_dir):
            marked = save_image_atomic(mark_spots(Image.fromarray(photo).convert("L"), spots), request_dir / "photo_spots.png")
        where = ", ".join(f"{n} {place(x, y, width, height)} at ({x}, {y})" for n, (x, y) in enumerate(spots, start=1))
        return str(marked), f"Paint the colour you know at spot 1 first, then 2, and so on (the numbered rings below): {where}."

    return run_suggest


def hints_tab(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage) -> None:
    """The "Colour hints" tab (issue 17): paint colours on the photo, see the result update."""
    with gr.Tab("Colour hints"):
        gr.Markdown(HINTS_HELP)
        with gr.Row():
            with gr.Column(scale=1):
                editor = UploadedEditor(label="Photo: paint the colours you know", type="numpy", image_mode="RGBA", format="png",
                                        sources=["upload", "clipboard"], transforms=(), layers=False,
                                        brush=gr.Brush(colors=HINT_COLORS, default_color=HINT_COLORS[0], color_mode="defaults"),
                                        elem_id="hints-editor")
                model_name = gr.Radio(list(models), value=DEFAULT_LABEL, label="Model")
                size = gr.Slider(64, 1024, value=DEFAULT_SIZE, step=16, label="Working resolution (short side)", info=SIZE_INFO,
                                 elem_id="hints-size")
                saturation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Saturation")
                auto_contrast = gr.Checkbox(False, label="Faded photo", info=AUTO_CONTRAST_INFO, elem_id="hints-auto-contrast")
                with gr.Row():
                    button = gr.Button("Colorize with hints", variant="primary", elem_id="hints-button")
                    clear = gr.Button("Clear hints", elem_id="hints-clear")
                with gr.Row():
                    count = gr.Slider(1, SUGGEST_MAX, value=SUGGEST_COUNT, step=1, label="Spots", elem_id="hints-spot-count")
                    suggest = gr.Button("Where should I paint?", elem_id="hints-suggest")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="filepath", format="png", elem_id="hints-slider")
                download = gr.File(label="Download the colorized photo (original size, PNG)", elem_id="hints-download")
                info = gr.Markdown(elem_id="hints-info")
                spots = gr.Image(label="Where a colour you know helps most (1 first)", type="filepath", interactive=False,
                                 format="png", elem_id="hints-spots")
                spots_info = gr.Markdown(elem_id="hints-spots-info")
    inputs, outputs = [editor, size, saturation, model_name, auto_contrast], [slider, download, info]
    button.click(make_hints_handler(models, storage), inputs, outputs, api_name=HINTS_API_NAME, concurrency_id="colorize")
    live = make_hints_handler(models, storage, live=True)
    # Each stroke, and each change of a setting, re-runs with the hints the editor holds (the
    # latest only, when they come faster than the server).
    editor.change(live, inputs, outputs, api_name=False, trigger_mode="always_last", concurrency_id="colorize",
                  show_progress="minimal")
    # .change, not .release: a number typed in a slider's box changes it without a release. A
    # drag's many changes cost one run and the latest (always_last).
    for control in (size, saturation, model_name, auto_contrast):
        control.change(live, inputs, outputs, api_name=False, trigger_mode="always_last", concurrency_id="colorize")
    suggest.click(make_suggest_handler(models, storage), [editor, size, model_name, auto_contrast, count], [spots, spots_info],
                  api_name=SUGGEST_API_NAME, concurrency_id="colorize")
    # Clearing the editor from the server does not fire its .change: the result is re-run here,
    # so that it shows the model's own colours again, as the editor does.
    clear.click(lambda value: None if not value or value.get("background") is None else
                {"background": value["background"], "layers": [], "composite": value["background"]},
                [editor], [editor], api_name=False, queue=False).then(
        live, inputs, outputs, api_name=False, trigger_mode="always_last", concurrency_id="colorize")


# The Video tab (issue 18): limits of the public demo, each changed by an environment variable.
VIDEO_API_NAME = "colorize_video"
VIDEO_MAX_SECONDS = float(os.environ.get("COLORGAN_SPACE_VIDEO_MAX_SECONDS", 20))
VIDEO_MAX_FRAMES = int(os.environ.get("COLORGAN_SPACE_VIDEO_MAX_FRAMES", 600))
VIDEO_MAX_PIXELS = int(os.environ.get("COLORGAN_SPACE_VIDEO_MAX_PIXELS", 1280 * 720))
# What a colorized clip may take on disk, a pixel and a frame (H.264 at CRF 18 needs far less), plus its sound.
VIDEO_DISK_BYTES_PER_PIXEL_FRAME = 0.25
NO_VIDEO = "Upload a video first."
VIDEO_HELP = f"""Upload a short black-and-white clip (MP4, MOV, MKV, WebM, AVI; at most **{VIDEO_MAX_SECONDS:g} s**,
{VIDEO_MAX_FRAMES} frames, {VIDEO_MAX_PIXELS / 1e6:.2g} megapixels a frame (1280x720), {MAX_UPLOAD.upper()}) and get it
back in colour: same size, frame rate and length, its sound kept, as an H.264 MP4. **Stability** averages each
frame's colours with those of the frames around it, along the motion (0: frame by frame, which flickers; 1: an
even average over each steady stretch); a scene cut starts afresh. The default model here is the photo default's wider network
alone (two-thirds of its computation per frame)."""


class UploadedVideo(gr.Video):
    """``gr.Video`` that hands the app the uploaded file itself, and only an upload (as
    :class:`UploadedImage`): Gradio's own preprocessing would convert it with a system ffmpeg."""

    @classmethod
    def get_block_name(cls) -> str:
        return "video"

    def preprocess(self, payload) -> str | None:
        return None if payload is None else checked_upload(payload.path)


def make_video_handler(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage):
    """Colorize an uploaded clip within the demo's video limits: (the colorized MP4, a line of information)."""
    from colorgan_hf.video import DEFAULT_VIDEO_SIZE, colorize_video, probe_video

    def run_video(video: str | None, stability: float, saturation: float, model_name: str, request: gr.Request = None):
        start = time.perf_counter()
        if not video:
            raise gr.Error(NO_VIDEO, print_exception=False)
        check_model(models, model_name)
        if not 0.0 <= float(stability) <= 1.0:
            raise gr.Error(f"Stability must be in [0, 1], got {stability}.", print_exception=False)
        saturation = checked_saturation(saturation)
        with storage.using(video):
            try:
                info = probe_video(video)
                frames = min(info.frames or VIDEO_MAX_FRAMES, VIDEO_MAX_FRAMES)
                need = int(info.width * info.height * frames * VIDEO_DISK_BYTES_PER_PIXEL_FRAME) + os.path.getsize(video)
                request_dir = storage.new_result_dir(session_of(request), need, "video")
                with storage.using(request_dir):
                    result = colorize_video(video, request_dir / f"{Path(video).stem}_color.mp4", models[model_name],
                                            size=DEFAULT_VIDEO_SIZE, stability=float(stability), saturation=saturation,
                                            max_seconds=VIDEO_MAX_SECONDS, max_frames=VIDEO_MAX_FRAMES, max_pixels=VIDEO_MAX_PIXELS)
            except ColorGANError as error:
                raise gr.Error(readable(error, video), print_exception=False) from None
            except OSError as error:
                raise gr.Error(f"{Path(video).name}: could not be colorized ({type(error).__name__})", print_exception=False) from None
        elapsed = time.perf_counter() - start
        cuts = f"; scene cuts at frames {', '.join(map(str, result.cuts))}" if result.cuts else ""
        line = (f"Colorized {result.frames} frames of {result.width}x{result.height} at {float(result.fps):g} frames/s "
                f"({result.seconds:.1f} s{', sound kept' if result.audio else ', no sound'}) with the {model_name} model "
                f"in {elapsed:.1f} s on the server ({result.frames_per_second:.1f} frames/s){cuts}.")
        if result.damaged_packets:
            line += (f" {result.damaged_packets} damaged packet(s) of the clip could not be decoded: "
                     "their frames are missing from the result.")
        return str(result.path), line

    return run_video


def video_tab(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage) -> None:
    """The "Video" tab (issue 18): upload a short clip, get it back colorized."""
    from colorgan_hf.video import DEFAULT_STABILITY

    with gr.Tab("Video"):
        gr.Markdown(VIDEO_HELP)
        with gr.Row():
            with gr.Column(scale=1):
                video = UploadedVideo(label=f"Black-and-white clip (up to {VIDEO_MAX_SECONDS:g} s)", sources=["upload"],
                                      elem_id="video-input")
                model_name = gr.Radio(list(models), value=DEFAULT_LABEL, label="Model", info=MODEL_INFO)
                stability = gr.Slider(0.0, 1.0, value=DEFAULT_STABILITY, step=0.05, label="Stability", elem_id="video-stability",
                                      info="0: frame by frame (flickers); higher: each frame's colours averaged with more "
                                           "of the frames around it, along the motion.")
                saturation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Saturation")
                button = gr.Button("Colorize video", variant="primary", elem_id="video-button")
            with gr.Column(scale=2):
                result = gr.Video(label="Colorized clip (MP4, same size, frame rate and sound)", elem_id="video-result",
                                  interactive=False)
                info = gr.Markdown(elem_id="video-info")
    button.click(lambda: (None, ""), None, [result, info], queue=False, show_progress="hidden", js=START_CLOCK_JS,
                 api_name=False).then(
        make_video_handler(models, storage), inputs=[video, stability, saturation, model_name], outputs=[result, info],
        api_name=VIDEO_API_NAME, concurrency_id="colorize",
    ).success(None, inputs=[info], outputs=[info], js=SHOW_WAIT_JS, api_name=False)


# Shown while a request runs, and cleared by the next one: an error never sits under an old result.
CLEAR = (None, None, "")
# The page measures what the person waited: from the click to the result in the browser.
START_CLOCK_JS = "(...args) => { window.colorganStart = performance.now(); return args; }"
SHOW_WAIT_JS = """(info) => {
  if (!info || window.colorganStart === undefined) return info;
  const waited = ((performance.now() - window.colorganStart) / 1000).toFixed(2);
  return `You waited ${waited} s. ${info}`;
}"""


def build_demo(models: dict[str, colorgan_hf.ColorGenerator], storage: Storage,
               video_models: dict[str, colorgan_hf.ColorGenerator] | None = None) -> gr.Blocks:
    with gr.Blocks(title="colorgan-hf: colorize black-and-white photos") as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column(scale=1):
                    image = UploadedImage(label="Black-and-white photo", type="filepath", sources=["upload", "clipboard", "webcam"],
                                          elem_id="input-image")
                    model_name = gr.Radio(list(models), value=DEFAULT_LABEL, label="Model", info=MODEL_INFO)
                    size = gr.Slider(64, 1024, value=DEFAULT_SIZE, step=16, label="Working resolution (short side)", info=SIZE_INFO)
                    saturation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Saturation")
                    auto_contrast = gr.Checkbox(False, label="Faded photo", info=AUTO_CONTRAST_INFO, elem_id="auto-contrast")
                    button = gr.Button("Colorize", variant="primary", elem_id="colorize-button")
                with gr.Column(scale=2):
                    slider = gr.ImageSlider(label="Before / after", type="filepath",
                                            format="png", elem_id="result-slider")
                    download = gr.File(label="Download the colorized photo (original size, PNG)", elem_id="download")
                    timing = gr.Markdown(elem_id="timing")
            gr.Examples(
                examples=[[str(p)] for p in sorted(EXAMPLES_DIR.glob("*")) if p.suffix.lower() in (".png", ".jpg")],
                inputs=[image], label="Examples: real black-and-white photos, and colour photos shown in gray",
            )
        with gr.Tab("Batch"):
            with gr.Row():
                with gr.Column(scale=1):
                    batch_files = UploadedFiles(label=f"Photos (up to {BATCH_MAX_FILES}, {MAX_UPLOAD.upper()} in all)",
                                                file_count="multiple", file_types=["image"], type="filepath", elem_id="batch-files")
                    batch_model = gr.Radio(list(models), value=DEFAULT_LABEL, label="Model", info=MODEL_INFO)
                    batch_size = gr.Slider(64, 1024, value=DEFAULT_SIZE, step=16, label="Working resolution (short side)",
                                           info=SIZE_INFO)
                    batch_saturation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Saturation")
                    batch_auto_contrast = gr.Checkbox(False, label="Faded photos", info=AUTO_CONTRAST_INFO,
                                                      elem_id="batch-auto-contrast")
                    batch_button = gr.Button("Colorize all", variant="primary", elem_id="batch-button")
                with gr.Column(scale=2):
                    batch_zip = gr.File(label="The colorized photos (zip of full-resolution PNGs)", elem_id="batch-zip")
                    batch_info = gr.Markdown(elem_id="batch-info")
        hints_tab(models, storage)
        video_tab(models if video_models is None else video_models, storage)

        button.click(lambda: CLEAR, None, [slider, download, timing], queue=False, show_progress="hidden",
                     js=START_CLOCK_JS, api_name=False).then(
            make_handler(models, storage), inputs=[image, size, saturation, model_name, auto_contrast],
            outputs=[slider, download, timing],
            api_name=API_NAME, concurrency_id="colorize",
        ).success(None, inputs=[timing], outputs=[timing], js=SHOW_WAIT_JS, api_name=False)
        batch_button.click(lambda: (None, ""), None, [batch_zip, batch_info], queue=False, show_progress="hidden",
                           js=START_CLOCK_JS, api_name=False).then(
            make_batch_handler(models, storage), inputs=[batch_files, batch_size, batch_saturation, batch_model, batch_auto_contrast],
            outputs=[batch_zip, batch_info], api_name=BATCH_API_NAME, concurrency_id="colorize",
        ).success(None, inputs=[batch_info], outputs=[batch_info], js=SHOW_WAIT_JS, api_name=False)

        def end_session(request: gr.Request) -> None:
            storage.end_session(session_of(request))

        demo.unload(end_session)
    # Both tabs share one limit: at most CONCURRENCY colorizations run at once, whatever the tab.
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def use_private_cache() -> Path:
    """Point Gradio's upload cache at a new folder of this app alone (removed at exit): only
    this app's uploads and results are ever accepted as inputs or served."""
    base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    Path(base).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="colorgan-space-", dir=base)).resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def remove_at_exit(storage: Storage) -> None:
    """Remove the private folder at exit: on Ctrl-C, SIGTERM and SIGHUP too (Gradio's main
    loop closes the server on KeyboardInterrupt, then atexit runs)."""
    atexit.register(storage.remove_all)

    def stop(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("COLORGAN_MODEL"),
                        help="Default-slot model: shipped name, local folder or Hub id (env COLORGAN_MODEL; default: the shipped model).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="Interface to listen on.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="Port to listen on.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from starlette.middleware import Middleware

    args = parse_args(argv)
    storage = Storage(use_private_cache(), MAX_DISK_BYTES, FILE_TTL_S)
    remove_at_exit(storage)
    models = load_models(args.model)
    demo = build_demo(models, storage, load_video_models(args.model, models))
    storage.freeze()
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=MAX_UPLOAD,
                allowed_paths=[str(EXAMPLES_DIR)], theme=gr.themes.Soft(), footer_links=["api"],
                app_kwargs={"middleware": [Middleware(UploadLimit, max_body=MAX_UPLOAD_BYTES, storage=storage)]})


if __name__ == "__main__":
    main()

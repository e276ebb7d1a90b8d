"""colorgan-hf demo: upload an old black-and-white photo, compare before and after, download it.

    python space/app.py [--model PATH_OR_HUB_ID] [--port 7860]

The app holds no model logic: it loads generators once and calls ``colorgan_hf.colorize``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import gradio as gr

try:
    import colorgan_hf
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import colorgan_hf

from colorgan_hf import ColorGANError, colorize, load_model
from colorgan_hf.images import load_image, save_image_atomic, to_pil
from colorgan_hf.pipeline import DEFAULT_SIZE
from colorgan_hf.registry import shipped_models

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
API_NAME = "colorize"
# Limits of the public demo; each can be raised by an environment variable.
MAX_UPLOAD = os.environ.get("COLORGAN_SPACE_MAX_UPLOAD", "25mb")
MAX_PIXELS = int(os.environ.get("COLORGAN_SPACE_MAX_PIXELS", 50_000_000))
CONCURRENCY = int(os.environ.get("COLORGAN_SPACE_CONCURRENCY", 2))
QUEUE_SIZE = int(os.environ.get("COLORGAN_SPACE_QUEUE_SIZE", 100))
OUTPUT_MAX_AGE_S = 3600
DEFAULT_LABEL = "default (ours)"
PAPER_LABEL = "paper (Demirel & Yuce)"

DESCRIPTION = f"""
# colorgan-hf: colorize black-and-white photos

Upload an old photo (or paste one, or use the webcam), press **Colorize**, and drag the
slider to compare. The result keeps your photo's full resolution and every detail of its
lightness: only the colours are predicted. Photos up to {MAX_UPLOAD.upper()} and
{MAX_PIXELS / 1e6:.0f} megapixels.
"""


class UploadedImage(gr.Image):
    """``gr.Image`` that hands the app the uploaded file itself, undecoded.

    Gradio's own preprocessing decodes (and re-encodes) the upload: it would drop 16-bit
    depth and fail with a generic "Error" on a bad file. The package reads the original file
    and says clearly what is wrong with it.
    """

    @classmethod
    def get_block_name(cls) -> str:
        return "image"

    def preprocess(self, payload) -> str | None:
        return None if payload is None else checked_upload(payload.path)


# The one answer to any image path that is not a file of Gradio's own upload cache: it says
# nothing about the path (whether it exists, is a folder, or is an image).
NOT_AN_UPLOAD = "This photo was not uploaded to the demo: upload the file, then press Colorize."


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


def use_private_cache() -> Path:
    """Point Gradio's upload cache at a new folder of this app alone (removed at exit): only
    this app's uploads and results are ever accepted as inputs or served."""
    base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    Path(base).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="colorgan-space-", dir=base)).resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def load_models(default: str | None) -> dict[str, colorgan_hf.ColorGenerator]:
    """The generators the page offers, loaded once at start-up."""
    models = {DEFAULT_LABEL: load_model(default or "default")}
    if "paper" in shipped_models():
        models[PAPER_LABEL] = load_model("paper")
    return models


def readable(error: Exception, upload: str) -> str:
    """The package's error with the server's temporary path replaced by the file's own name."""
    return str(error).replace(upload, Path(upload).name)


def _prune(folder: Path, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
    """Remove result folders older than ``max_age_s``: a long-running Space must not fill its disk."""
    cutoff = time.time() - max_age_s
    for child in folder.iterdir():
        if child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)


def make_handler(models: dict[str, colorgan_hf.ColorGenerator], output_dir: Path):
    def run(image: str | None, size: int, saturation: float, model_name: str):
        if not image:
            raise gr.Error("Upload a photo first.")
        if model_name not in models:
            raise gr.Error(f"Unknown model {model_name!r}.")
        start = time.perf_counter()
        try:
            loaded = load_image(image, max_pixels=MAX_PIXELS)  # decoded once, for both sides of the slider
            before = to_pil(loaded.rgb).convert("L")
            after = colorize(loaded, models[model_name], size=int(size), saturation=float(saturation), max_pixels=MAX_PIXELS)
        except ColorGANError as error:
            raise gr.Error(readable(error, image), print_exception=False) from None
        elapsed = time.perf_counter() - start
        # Each request gets its own folder: concurrent uploads of same-named photos must
        # never share (or half-read) a result file. The slider gets files written atomically
        # here, not PIL images: Gradio writes PIL results in place under a content hash, so
        # two identical results served at once could reach a client half-written.
        _prune(output_dir)
        request_dir = Path(tempfile.mkdtemp(dir=output_dir))
        stem = Path(image).stem
        download = save_image_atomic(after, request_dir / f"{stem}_color.png")
        before_preview = save_image_atomic(before, request_dir / f"{stem}_gray.jpg")
        after_preview = save_image_atomic(after.convert("RGB"), request_dir / f"{stem}_color.jpg")
        info = f"Colorized {after.width}x{after.height} ({after.width * after.height / 1e6:.1f} MP) in {elapsed:.2f} s with the {model_name} model."
        return (str(before_preview), str(after_preview)), str(download), info

    return run


def build_demo(models: dict[str, colorgan_hf.ColorGenerator]) -> gr.Blocks:
    output_dir = Path(tempfile.mkdtemp(prefix="colorgan-space-"))
    # Gradio's own copies of uploads and results are deleted after an hour, too.
    with gr.Blocks(title="colorgan-hf: colorize black-and-white photos", delete_cache=(OUTPUT_MAX_AGE_S, OUTPUT_MAX_AGE_S)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Row():
            with gr.Column(scale=1):
                image = UploadedImage(label="Black-and-white photo", type="filepath", sources=["upload", "clipboard", "webcam"],
                                 elem_id="input-image")
                model_name = gr.Radio(list(models), value=DEFAULT_LABEL, label="Model")
                size = gr.Slider(64, 1024, value=DEFAULT_SIZE, step=16, label="Working resolution (short side)",
                                 info="The network sees the photo at this size; the output keeps full resolution.")
                saturation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Saturation")
                button = gr.Button("Colorize", variant="primary", elem_id="colorize-button")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="result-slider")
                download = gr.File(label="Download the colorized photo (original size, PNG)", elem_id="download")
                timing = gr.Markdown(elem_id="timing")
        gr.Examples(
            examples=[[str(p)] for p in sorted(EXAMPLES_DIR.glob("*")) if p.suffix.lower() in (".png", ".jpg")],
            inputs=[image], label="Examples: real black-and-white photos, and colour photos shown in gray",
        )
        button.click(make_handler(models, output_dir), inputs=[image, size, saturation, model_name],
                     outputs=[slider, download, timing], api_name=API_NAME)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("COLORGAN_MODEL"),
                        help="Default-slot model: shipped name, local folder or Hub id (env COLORGAN_MODEL; default: the shipped model).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="Interface to listen on.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="Port to listen on.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    use_private_cache()
    demo = build_demo(load_models(args.model))
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=MAX_UPLOAD,
                allowed_paths=[str(EXAMPLES_DIR)], theme=gr.themes.Soft(), footer_links=["api"])


if __name__ == "__main__":
    main()

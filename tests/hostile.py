"""Hostile and unusual inputs, shared by the package, CLI and Space tests.

Each case: (file name, maker(path, photo), expected) where expected is ("ok", size) or
("error", words of the reason).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

BOMB_SIDE = 30000


def write_png_bomb(path: Path, side: int = BOMB_SIDE) -> None:
    """A real PNG of side x side black pixels: under 1 MB on disk, 900 MB once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    rows = (b"\x00" * (side + 1)) * 100
    idat = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _truncated_jpeg(path: Path, photo: Image.Image) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])


def _animated_gif(path: Path, photo: Image.Image) -> None:
    frames = [photo.convert("L").convert("P"), photo.convert("L").point(lambda v: 255 - v).convert("P")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_png_with_transparency(path: Path, photo: Image.Image) -> None:
    image = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    image.save(path, transparency=0)


def _exif_rotated(path: Path, photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    photo.save(path, exif=exif)


CASES = [
    ("zero_bytes.jpg", lambda p, photo: p.write_bytes(b""), ("error", "empty file")),
    ("truncated.jpg", _truncated_jpeg, ("error", "truncated")),
    ("text_renamed.jpg", lambda p, photo: p.write_text("a shopping list, not a photo\n"), ("error", "not an image")),
    ("page.html", lambda p, photo: p.write_text("<!doctype html><html><body><img src=x></body></html>"), ("error", "not an image")),
    ("one_pixel.png", lambda p, photo: Image.new("L", (1, 1), 77).save(p), ("ok", (1, 1))),
    ("strip_1x5000.png", lambda p, photo: Image.new("L", (5000, 1), 120).save(p), ("ok", (5000, 1))),
    ("bomb_30000x30000.png", lambda p, photo: write_png_bomb(p), ("error", "over the limit")),
    ("animated.gif", _animated_gif, ("ok", "photo")),
    ("cmyk.jpg", lambda p, photo: photo.convert("CMYK").save(p), ("ok", "photo")),
    ("sixteen_bit.png", lambda p, photo: Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(p), ("ok", "photo")),
    ("palette_transparent.png", _palette_png_with_transparency, ("ok", "photo")),
    ("exif_rotated.jpg", _exif_rotated, ("ok", "rotated")),
    ("colour_photo.jpg", lambda p, photo: photo.save(p), ("ok", "photo")),
]
ERROR_CASES = [name for name, _, (kind, _) in CASES if kind == "error"]


def expected_size(expected, photo: Image.Image) -> tuple[int, int]:
    value = expected[1]
    if value == "photo":
        return photo.size
    if value == "rotated":
        return photo.height, photo.width
    return value


def make_all(folder: Path, photo: Image.Image) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, maker, _ in CASES:
        path = folder / name
        maker(path, photo)
        paths[name] = path
    return paths

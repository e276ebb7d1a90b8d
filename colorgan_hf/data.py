"""Gray/colour pair sets built with `datasets`, as the paper builds its own (section 3.1).

:func:`build_pair_dataset` reads image folders (or a Hub dataset with an image column),
drops what cannot teach colour (grayscale or tinted photos, tiny or unreadable files,
each counted), resizes, pairs every colour image with its gray version, and splits 90/10
with a seed. :func:`train_transform` and :func:`eval_transform` turn rows into tensors on
the fly through ``with_transform``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import torch
from PIL import Image

from .color import rgb_to_lab
from .errors import ColorGANError, ImageLoadError
from .images import find_images, load_image, to_pil

# Below this mean chroma (Lab units) a photo counts as grayscale.
GRAY_CHROMA = 2.0
# A tinted print (sepia, cyanotype, a colour cast over a black-and-white photo) has all its
# chroma on one line of the ab plane: one hue, more or less of it. When the spread across
# that line (the minor axis of the ab covariance, Lab units) is below this, the photo counts
# as tinted: it would teach one hue for everything.
TINT_MINOR_SPREAD = 1.0
# Colour images are stored as JPEG at this quality (the training photos are JPEG q90).
STORE_JPEG_QUALITY = 95
REJECT_REASONS = ("grayscale", "tinted", "too_small", "unreadable")
# How many dropped files the build's log line names (the report lists them all).
NAMED_IN_LOG = 3
ResizeMode = Literal["square", "short_side"]
logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What :func:`build_pair_dataset` kept and dropped, and why."""

    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {reason: 0 for reason in REJECT_REASONS})
    splits: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    # Each dropped file: {"file": its path (a Hub row: "<dataset id> row <index>"), "reason": one of REJECT_REASONS}.
    dropped_files: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts (what a log line shows)."""
        return {"total": self.total, "kept": self.kept, "dropped": self.dropped, "splits": self.splits, "by_source": self.by_source}

    def as_dict(self) -> dict[str, Any]:
        """The counts and every dropped file (what build_report.json keeps)."""
        return {**self.summary(), "dropped_files": self.dropped_files}

    def dropped_text(self) -> str:
        """A short account of the dropped files, naming the first few: "" when none was dropped."""
        if not self.dropped_files:
            return ""
        named = ", ".join(f"{row['file']} ({row['reason']})" for row in self.dropped_files[:NAMED_IN_LOG])
        more = len(self.dropped_files) - NAMED_IN_LOG
        return (f"dropped {len(self.dropped_files)} of {self.total} images: {named}"
                + (f" and {more} more" if more > 0 else "") + " (the build report's dropped_files lists each with its reason)")


def list_images(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """All image files under ``folder`` (recursively, sorted) and the source of each.

    The source is the first sub-folder below ``folder`` (``intel_scenes``, ``imagenet``,
    ...) or the folder's own name for files directly in it: it lets training balance
    sources that differ hugely in size.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ColorGANError(f"{root}: not a folder")
    paths, sources = [], []
    for path in find_images(root):
        relative = path.relative_to(root)
        paths.append(str(path))
        sources.append(relative.parts[0] if len(relative.parts) > 1 else root.name)
    return paths, sources


def colour_spread(image: Image.Image) -> tuple[float, float]:
    """(mean chroma, spread across the main hue line) of a photo's 64 px thumbnail, in Lab units.

    The spread is the square root of the smaller eigenvalue of the a*b* covariance: a one-hue
    tint has next to none, whatever its strength.
    """
    thumb = image.convert("RGB")
    thumb.thumbnail((64, 64))
    rgb = torch.from_numpy(np.array(thumb)).permute(2, 0, 1).float().div(255.0)
    ab = rgb_to_lab(rgb)[1:].flatten(1)  # (2, N)
    centered = ab - ab.mean(dim=1, keepdim=True)
    minor_variance = torch.linalg.eigvalsh(centered @ centered.T / centered.shape[1])[0]
    return ab.norm(dim=0).mean().item(), minor_variance.clamp_min(0).sqrt().item()


def classify_color(image: Image.Image, tint_spread: float = TINT_MINOR_SPREAD) -> Literal["ok", "grayscale", "tinted"]:
    """Whether an RGB photo has real colour, or is gray or a one-hue tint (spread below
    ``tint_spread``; 0 never calls a photo tinted)."""
    chroma, spread = colour_spread(image)
    if chroma < GRAY_CHROMA:
        return "grayscale"
    if spread < tint_spread:
        return "tinted"
    return "ok"


def resize_image(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    """``square``: squash to size x size (the paper's 120x120). ``short_side``: short side to size."""
    if mode == "square":
        return image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    scale = size / min(image.size)
    new = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
    return image.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)


def make_pair(image: Image.Image, size: int, mode: ResizeMode, min_size: int,
              tint_spread: float = TINT_MINOR_SPREAD) -> tuple[str, dict | None, Image.Image | None]:
    """One photo -> (status, colour as stored JPEG bytes, gray). The gray is made from the
    colour exactly as stored (decoded from those bytes), so the pair matches exactly."""
    if min(image.size) < min_size:
        return "too_small", None, None
    status = classify_color(image, tint_spread)
    if status != "ok":
        return status, None, None
    color = resize_image(image.convert("RGB"), size, mode)
    buffer = io.BytesIO()
    color.save(buffer, format="JPEG", quality=STORE_JPEG_QUALITY)
    data = buffer.getvalue()
    gray = Image.open(io.BytesIO(data)).convert("L")
    return "ok", {"bytes": data, "path": None}, gray


def _process_rows(batch: dict[str, list], size: int, mode: ResizeMode, min_size: int, image_column: str,
                  tint_spread: float = TINT_MINOR_SPREAD) -> dict[str, list]:
    out: dict[str, list] = {"status": [], "color": [], "gray": []}
    for item in batch[image_column]:
        try:
            if item.get("bytes") is not None:
                source: Any = Image.open(io.BytesIO(item["bytes"]))
            else:
                source = item["path"]
            status, color, gray = make_pair(to_pil(load_image(source).rgb), size, mode, min_size, tint_spread)
        except (ImageLoadError, OSError, ValueError, SyntaxError):
            status, color, gray = "unreadable", None, None
        out["status"].append(status)
        out["color"].append(color)
        out["gray"].append(gray)
    return out


def _source_dataset(sources: Iterable[str], image_column: str, split: str):
    """A Dataset with an undecoded image column and a source column, from folders or Hub ids."""
    import datasets

    parts = []
    for source in sources:
        if Path(source).is_dir():
            paths, names = list_images(source)
            parts.append(datasets.Dataset.from_dict({"image": [{"path": p, "bytes": None} for p in paths], "source": names},
                                                    features=datasets.Features({"image": datasets.Image(decode=False), "source": datasets.Value("string")})))
        else:
            try:
                hub = datasets.load_dataset(source, split=split)
            except Exception as error:
                raise ColorGANError(f"{source}: neither a folder nor a loadable dataset ({error})") from None
            if image_column not in hub.column_names:
                raise ColorGANError(f"{source}: no column {image_column!r} (columns: {', '.join(hub.column_names)})")
            hub = hub.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
            hub = hub.rename_column(image_column, "image").add_column("source", [source] * len(hub))
            parts.append(hub)
    if not parts:
        raise ColorGANError("no data sources given")
    return datasets.concatenate_datasets(parts)


def build_pair_dataset(
    sources: Iterable[str],
    size: int = 256,
    resize_mode: ResizeMode = "short_side",
    min_size: int = 64,
    test_fraction: float = 0.1,
    seed: int = 0,
    image_column: str = "image",
    hub_split: str = "train",
    num_proc: int | None = None,
    max_photos: int | None = None,
    tint_spread: float = TINT_MINOR_SPREAD,
):
    """Build a ``DatasetDict`` of ``train``/``test`` pairs with columns ``color``, ``gray``, ``source``.

    Args:
        sources: image folders (searched recursively) and/or Hub dataset ids.
        size: target size: the square side (``resize_mode="square"``) or the short side.
        resize_mode: ``"square"`` squashes to size x size as the paper does; ``"short_side"``
            keeps the aspect ratio so training can take random crops.
        min_size: photos whose short side is below this are dropped as too small.
        test_fraction: share held out for the test split (the paper's 10%).
        seed: seed of the shuffle that splits the pairs.
        image_column: the image column of a Hub dataset.
        num_proc: worker processes for decoding.
        max_photos: keep a random ``max_photos`` of the usable photos (drawn with ``seed``,
            before the split): the paper's 3,000-photo scale without hand-picking.
        tint_spread: photos whose colours spread less than this across their main hue line
            (Lab units, :func:`colour_spread`) are dropped as tinted prints; 0 keeps them all.

    Returns:
        ``(DatasetDict, BuildReport)``.
    """
    import datasets

    if not math.isfinite(tint_spread) or tint_spread < 0:
        raise ColorGANError(f"tint_spread must be a finite number >= 0 (got {tint_spread})")
    table = _source_dataset(sources, image_column, hub_split)
    report = BuildReport(total=len(table))
    features = datasets.Features({"image": datasets.Image(decode=False), "source": datasets.Value("string"),
                                  "status": datasets.Value("string"), "color": datasets.Image(), "gray": datasets.Image()})
    processed = table.map(
        _process_rows, batched=True, batch_size=32, num_proc=num_proc, features=features,
        fn_kwargs=dict(size=size, mode=resize_mode, min_size=min_size, image_column="image", tint_spread=tint_spread),
        desc="Building gray/colour pairs",
    )
    statuses = processed["status"]
    counts = Counter(statuses)
    for reason in REJECT_REASONS:
        report.dropped[reason] = counts.get(reason, 0)
    report.dropped_files = _dropped_files(processed, statuses)
    if report.dropped_files:
        logger.info(report.dropped_text())
    kept = processed.filter(lambda status: status == "ok", input_columns="status").remove_columns(["status", "image"])
    if max_photos is not None:
        if max_photos < 2:
            raise ColorGANError(f"max_photos must be at least 2 (got {max_photos})")
        if len(kept) > max_photos:
            kept = kept.shuffle(seed=seed).select(range(max_photos)).flatten_indices()
    report.kept = len(kept)
    if report.kept < 2:
        raise ColorGANError(f"only {report.kept} usable image(s) out of {report.total}: need at least 2 to split ({report.dropped})")
    split = kept.train_test_split(test_size=test_fraction, seed=seed, shuffle=True)
    pairs = datasets.DatasetDict({"train": split["train"], "test": split["test"]})
    report.splits = {name: len(part) for name, part in pairs.items()}
    report.by_source = dict(Counter(pairs["train"]["source"]))
    return pairs, report


def _dropped_files(processed, statuses: list[str]) -> list[dict[str, str]]:
    """{"file", "reason"} of each row of the processed table whose status is not "ok": the file's path or,
    for a Hub row without one, its dataset id and row number there."""
    rows = [row for row, status in enumerate(statuses) if status != "ok"]
    if not rows:
        return []
    sources = processed["source"]
    first_row: dict[str, int] = {}
    for row, source in enumerate(sources):  # each source's rows follow one another (see _source_dataset)
        first_row.setdefault(source, row)
    images = processed.select(rows)["image"]  # only the dropped rows' bytes are read
    return [{"file": image.get("path") or f"{sources[row]} row {row - first_row[sources[row]]}", "reason": statuses[row]}
            for row, image in zip(rows, images)]


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div_(255.0)  # (3, H, W) in [0, 1]


def _crop(image: Image.Image, crop: int, rng: random.Random | None) -> Image.Image:
    """A crop x crop window: random with ``rng``, central without."""
    if image.width == crop and image.height == crop:
        return image
    if min(image.size) < crop:
        image = resize_image(image, crop, "short_side")
    if rng is None:
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
    else:
        left, top = rng.randint(0, image.width - crop), rng.randint(0, image.height - crop)
    return image.crop((left, top, left + crop, top + crop))


# What a stored image that fails to decode raises (a truncated or corrupt JPEG/PNG, a bomb, a bad header).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def open_stored(value: dict) -> Image.Image:
    """A ``datasets.Image(decode=False)`` value ({"bytes", "path"}) as a loaded PIL image."""
    if value.get("bytes") is not None:
        image = Image.open(io.BytesIO(value["bytes"]))
    elif value.get("path"):
        image = Image.open(value["path"])
    else:
        raise ValueError("an image with neither bytes nor a path")
    image.load()
    return image


def _decode(value: Any) -> Image.Image:
    """A stored image as ``datasets.Image`` decodes it: a PIL image as it is, or {"bytes", "path"} opened and loaded."""
    if isinstance(value, Image.Image):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"not an image: {type(value).__name__}")
    image = open_stored(value)
    if image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
    return image


class PairTransform:
    """A ``with_transform`` function: rows -> ``rgb`` (3, crop, crop) and ``gray`` (1, crop, crop) tensors.

    Training takes a random crop and a random horizontal flip, the same for both halves of
    a pair; evaluation takes the central crop and no flip. The randomness of a row is drawn
    from (seed, epoch, row index) alone, so a run resumed mid-epoch, or loaded with any
    number of workers, sees exactly the crops of an uninterrupted run. Set :attr:`epoch` at
    the start of each epoch; rows need a ``row`` column (see :func:`with_row_index`).

    A row whose image cannot be decoded (corrupt bytes in the pair set) is left out of the
    batch, with a warning naming its row id the first time, and counted in
    :attr:`skipped` (row id -> reason): one bad row never stops training. The images are
    decoded here rather than by ``datasets`` (see :func:`with_row_index`), so that such a
    row can be caught; a batch whose every row is bad is a :class:`ColorGANError`.
    """

    def __init__(self, crop: int, train: bool, seed: int = 0) -> None:
        self.crop = crop
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.skipped: dict[Any, str] = {}

    def _skip(self, row: Any, source: Any, error: BaseException) -> None:
        if row not in self.skipped:
            self.skipped[row] = f"{type(error).__name__}: {error}"
            logger.warning(f"pair set row {row} (source {source}): unreadable image, skipped ({self.skipped[row]}); "
                           f"{len(self.skipped)} bad row(s) so far")

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rgbs, grays, sources, kept_rows = [], [], [], []
        count = len(batch["color"])
        rows = batch.get("row", [None] * count)
        batch_sources = batch.get("source", [None] * count)
        for color, gray, row, source in zip(batch["color"], batch["gray"], rows, batch_sources):
            try:
                color, gray = _decode(color), _decode(gray)
            except DECODE_ERRORS as error:
                self._skip(row, source, error)
                continue
            rng = random.Random(f"{self.seed}-{self.epoch}-{row}") if self.train else None
            state = rng.getstate() if rng else None
            try:
                color = _crop(color, self.crop, rng)
                if rng:
                    rng.setstate(state)
                gray = _crop(gray, self.crop, rng)
                rgb, g = _to_tensor(color), _to_tensor(gray)[:1]
            except DECODE_ERRORS as error:  # PIL decodes some formats lazily: a late error is the row's too
                self._skip(row, source, error)
                continue
            if rng and rng.random() < 0.5:
                rgb, g = rgb.flip(-1), g.flip(-1)
            rgbs.append(rgb)
            grays.append(g)
            sources.append(source)
            kept_rows.append(row)
        if count and not rgbs:
            raise ColorGANError(f"every row of a batch of the pair set is unreadable (rows {list(rows)}): the pair set is "
                                f"damaged; rebuild it with `colorgan build-dataset`")
        out = {"rgb": rgbs, "gray": grays, "source": sources}
        if "row" in batch:
            out["row"] = kept_rows
        return out


def undecoded(split):
    """The split with its ``color``/``gray`` columns left as stored bytes: :class:`PairTransform` decodes them,
    so that a corrupt row is skipped instead of raising inside ``datasets``."""
    import datasets

    for column in ("color", "gray"):
        feature = split.features.get(column)
        if isinstance(feature, datasets.Image) and feature.decode:
            split = split.cast_column(column, datasets.Image(decode=False))
    return split


def with_row_index(split):
    """The split, undecoded (see :func:`undecoded`), with a ``row`` column (0..n-1) for
    :class:`PairTransform`'s per-row randomness and its warnings."""
    return undecoded(split).add_column("row", list(range(len(split))))

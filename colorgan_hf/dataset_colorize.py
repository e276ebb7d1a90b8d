"""``colorgan colorize-dataset``: a Hub or local ``datasets`` dataset in, the same dataset with a
colorized image column out.

Rows are mapped through the model with ``datasets`` (``map(batched=True)``); inside each batch
the photos go through the same engine as ``colorgan colorize`` (:func:`colorgan_hf.batch.run_batches`:
batches of one working shape, decoding and encoding on worker threads). Every other column is
kept; a row whose image cannot be read or colorized keeps an empty colorized image and says why
in ``colorize_error``, and the others go on. Each colorized image is encoded in its input's
format (a JPEG keeps its own quantization tables; anything else is PNG).

Inputs: a Hub dataset id, a folder written by ``save_to_disk`` (a ``Dataset`` or ``DatasetDict``)
or a folder of images (the ``imagefolder`` builder). With ``streaming`` the input is read as it
goes (``IterableDataset``: nothing is downloaded first) and the output is written as Parquet
shards (``OUT/data/SPLIT-RANK-NNNNN.parquet``) or pushed to the Hub as it is produced; without it,
the output is a ``save_to_disk`` folder (or a Hub push). Under ``accelerate launch`` each process
takes its contiguous shard of every split (``split_dataset_by_node`` when streaming).
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image, UnidentifiedImageError

from .batch import ColorizeSettings, Processes, ShareResult, run_batches
from .errors import ColorGANError, ImageLoadError
from .files import check_output_folder
from .images import ImageMetadata, _save_options, read_metadata

logger = logging.getLogger("colorgan")

ERROR_COLUMN = "colorize_error"
# Formats a colorized row keeps from its input; anything else (GIF, BMP, ...) is written as PNG.
KEEP_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}
# Rows of one Parquet file written when streaming.
SHARD_ROWS = 1000
WORK_DIR = ".colorgan-work"


@dataclass
class DatasetResult:
    """What became of the rows: counts per split, and (row, message) for each failure."""

    rows: int = 0
    done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def load_source(source: str, *, split: str | None = None, streaming: bool = False) -> dict[str, Any]:
    """``{split: Dataset or IterableDataset}`` from a Hub id, a ``save_to_disk`` folder or an image folder."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    path = Path(source)
    if path.is_dir() and _is_saved_dataset(path):
        loaded = load_from_disk(str(path))
        if streaming:
            loaded = DatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()}) if isinstance(loaded, DatasetDict) \
                else loaded.to_iterable_dataset()
    elif path.is_dir():
        loaded = load_dataset("imagefolder", data_dir=str(path), streaming=streaming)
    elif path.exists():
        raise ColorGANError(f"{source}: not a dataset folder, an image folder or a Hub dataset id")
    else:
        loaded = load_dataset(source, streaming=streaming)
    splits = dict(loaded.items()) if not isinstance(loaded, Dataset) and hasattr(loaded, "items") else {"train": loaded}
    if split is not None:
        if split not in splits:
            raise ColorGANError(f"{source} has no split {split!r} (it has {', '.join(splits)})")
        splits = {split: splits[split]}
    return splits


def _encode(image: Image.Image, metadata: ImageMetadata | None, quality: int | None) -> bytes:
    fmt = metadata.format if metadata and metadata.format in KEEP_FORMATS else "PNG"
    if fmt == "JPEG" and image.mode == "RGBA":
        fmt = "PNG"  # JPEG has no alpha: the transparency is kept rather than flattened
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **_save_options(fmt, metadata, quality))
    return buffer.getvalue()


def make_mapper(generator: Any, settings: ColorizeSettings, *, image_column: str, output_column: str, device: Any,
                batch_size: int, workers: int, result: DatasetResult, on_error: Callable[[str], None] | None = None,
                on_progress: Callable[[int], None] | None = None, offset: int = 0) -> Callable[[dict, list[int]], dict]:
    """The function ``datasets.map(batched=True, with_indices=True)`` calls on each batch of rows
    (the image column cast to ``Image(decode=False)``: bytes and path, decoded here, so a bad row is
    that row's error, never the batch's). ``offset``: the index of this process's first row in the split."""

    def colorize_rows(batch: dict, indices: list[int]) -> dict:
        values = batch[image_column]
        colorized: list[dict | None] = [None] * len(values)
        errors: list[str | None] = [None] * len(values)

        def name(i: int) -> str:
            value = values[i] if isinstance(values[i], dict) else {}
            return f"row {offset + indices[i]}" + (f" ({value['path']})" if value.get("path") else "")

        def read(i: int) -> Any:
            value = values[i]
            if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
                raise ImageLoadError(f"{name(i)}: no image")
            if value.get("bytes"):
                data = value["bytes"]
                try:
                    return Image.open(io.BytesIO(data)), read_metadata(io.BytesIO(data))
                except UnidentifiedImageError:
                    raise ImageLoadError(f"{name(i)}: not an image, or a format Pillow cannot read") from None
                except Exception as error:  # noqa: BLE001 - any unreadable bytes are that row's error
                    raise ImageLoadError(f"{name(i)}: cannot be read ({type(error).__name__}: {error})") from None
            return value["path"], read_metadata(value["path"])

        def write(i: int, image: Image.Image, metadata: ImageMetadata | None) -> bool:
            colorized[i] = {"bytes": _encode(image, metadata, settings.quality), "path": None}
            return True

        def failed(i: int, message: str) -> None:
            errors[i] = message
            if on_error is not None:
                on_error(message)

        share: ShareResult = run_batches(range(len(values)), generator, settings, read=read, write=write, name=name,
                                         device=device, batch_size=batch_size, workers=workers, on_error=failed,
                                         on_progress=on_progress)
        result.rows += len(values)
        result.done += share.done
        result.failures.extend(share.failures)
        return {output_column: colorized, ERROR_COLUMN: errors}

    return colorize_rows


def colorize_dataset(
    source: str,
    output_dir: str | None,
    generator: Any,
    settings: ColorizeSettings,
    *,
    processes: Processes,
    image_column: str = "image",
    output_column: str = "colorized",
    split: str | None = None,
    streaming: bool = False,
    push_to_hub: str | None = None,
    map_batch_size: int = 64,
    batch_size: int = 8,
    workers: int = 2,
    on_error: Callable[[str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DatasetResult:
    """Colorize ``image_column`` of every split of ``source`` into ``output_column``, keeping every
    other column; save to ``output_dir`` and/or push to the Hub repo ``push_to_hub``.

    This process's share only, under ``accelerate launch``; the main process writes the combined
    output (a ``save_to_disk`` folder, or the Parquet shards every process writes when ``streaming``).
    Returns this process's :class:`DatasetResult`.
    """
    from datasets import Features, Value, concatenate_datasets
    from datasets import Image as ImageFeature
    from datasets.distributed import split_dataset_by_node

    if output_dir is None and push_to_hub is None:
        raise ColorGANError("give -o OUT and/or --push_to_hub REPO_ID")
    if output_dir is None and processes.world > 1:
        raise ColorGANError("under accelerate launch, give -o OUT (a folder every process sees) as well as --push_to_hub")
    out = Path(output_dir) if output_dir else None
    splits = load_source(source, split=split, streaming=streaming)
    result = DatasetResult()
    # The mapped rows are written here (never into the input dataset's own folder), then saved or pushed.
    work = (out / WORK_DIR) if out else Path(tempfile.mkdtemp(prefix="colorgan-dataset-"))
    finished: dict[str, Any] = {}
    for name, data in splits.items():
        features = data.features
        if features is None or image_column not in features:
            raise ColorGANError(f"{source} ({name}) has no column {image_column!r} (it has {', '.join(features or [])})")
        if output_column in features:
            raise ColorGANError(f"{source} ({name}) already has a column {output_column!r}: choose another --output_column")
        data = data.cast_column(image_column, ImageFeature(decode=False))
        # Images stay encoded (bytes) all the way: no decode and re-encode on the way out.
        mapped_features = Features({**data.features, output_column: ImageFeature(decode=False), ERROR_COLUMN: Value("string")})
        final_features = Features({**mapped_features, image_column: ImageFeature(), output_column: ImageFeature()})
        offset = 0
        if processes.world > 1 and not streaming:  # datasets' contiguous shards: the first rows get one more each
            div, mod = divmod(len(data), processes.world)
            offset = div * processes.rank + min(processes.rank, mod)
        mapper = make_mapper(generator, settings, image_column=image_column, output_column=output_column, device=processes.device,
                             batch_size=batch_size, workers=workers, result=result, on_error=on_error, on_progress=on_progress,
                             offset=offset)
        if streaming:
            data = split_dataset_by_node(data, rank=processes.rank, world_size=processes.world) if processes.world > 1 else data
            mapped = data.map(mapper, batched=True, batch_size=map_batch_size, with_indices=True, features=mapped_features)
            if push_to_hub and processes.world == 1 and out is None:
                mapped.cast(final_features).push_to_hub(push_to_hub, split=name)
            else:
                _write_parquet_shards(mapped, out / "data", name, processes.rank, final_features)
            continue
        share = data.shard(num_shards=processes.world, index=processes.rank, contiguous=True) if processes.world > 1 else data
        work.mkdir(parents=True, exist_ok=True)
        cache = str(work / f"{name}-{processes.rank:05d}.arrow")
        mapped = share.map(mapper, batched=True, batch_size=map_batch_size, with_indices=True, features=mapped_features,
                           cache_file_name=cache, load_from_cache_file=False, desc=None)
        finished[name] = mapped
    processes.barrier()
    if not streaming and processes.is_main:
        from datasets import Dataset, DatasetDict

        combined = {}
        for name, mapped in finished.items():
            parts = [mapped] + [Dataset.from_file(str(work / f"{name}-{rank:05d}.arrow")) for rank in range(1, processes.world)]
            joined = concatenate_datasets(parts) if len(parts) > 1 else mapped
            combined[name] = joined.cast(Features({**joined.features, image_column: ImageFeature(), output_column: ImageFeature()}))
        dataset = DatasetDict(combined)
        if out is not None:
            dataset.save_to_disk(str(out))
        if push_to_hub:
            dataset.push_to_hub(push_to_hub)
    if streaming and push_to_hub and out is not None and processes.is_main:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=push_to_hub, repo_type="dataset", folder_path=str(out / "data"), path_in_repo="data")
    processes.barrier()
    if processes.is_main:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _write_parquet_shards(rows: Any, folder: Path, split: str, rank: int, features: Any) -> None:
    """Write an ``IterableDataset`` as Parquet files of :data:`SHARD_ROWS` rows, as it is produced."""
    from datasets import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    chunk: list[dict] = []
    count = 0

    def flush() -> None:
        nonlocal count, chunk
        if chunk:
            target = folder / f"{split}-{rank:05d}-{count:05d}.parquet"
            Dataset.from_list(chunk, features=features).to_parquet(str(target))
            count, chunk = count + 1, []

    for row in rows:
        chunk.append(row)
        if len(chunk) >= SHARD_ROWS:
            flush()
    flush()


def run_from_cli(args: Any) -> int:
    """``colorgan colorize-dataset``: load the model, colorize this process's share, and (main
    process) print the combined summary; every process returns the combined status."""
    import sys

    import torch
    from tqdm.auto import tqdm

    from .batch import default_batch_size, default_threads, place_generator
    from .registry import run_generator
    from .pipeline import MAX_SIZE, _generator, warn_if_vividness_ignored

    if not 1 <= args.size <= MAX_SIZE:
        raise ColorGANError(f"--size must be between 16 and {MAX_SIZE}, got {args.size}")
    if (args.batch_size is not None and args.batch_size < 1) or args.map_batch_size < 1 or args.workers < 0 or (args.threads is not None and args.threads < 1):
        raise ColorGANError("--batch-size, --map-batch-size and --threads must be at least 1 and --workers at least 0")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise ColorGANError(f"--quality must be between 1 and 100, got {args.quality}")
    if args.output_dir:
        check_output_folder(args.output_dir, "-o")
    processes = Processes(args.device)
    if args.threads or processes.local_world > 1:
        torch.set_num_threads(args.threads or default_threads(processes.local_world))
    try:
        generator = _generator(run_generator(args.model))
    except (ColorGANError, OSError, ValueError) as error:
        raise ColorGANError(f"cannot load model {args.model or 'default'}: {error}") from None
    warn_if_vividness_ignored(generator, args.vividness, args.model)
    generator = place_generator(generator, processes.device)
    settings = ColorizeSettings(size=args.size, saturation=args.saturation, vividness=args.vividness,
                                auto_contrast=args.auto_contrast, quality=args.quality, bf16=args.bf16)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar, ours, rather than one for each map, cast and save
    bar = tqdm(desc="Colorizing rows", unit="row", disable=args.quiet or not processes.is_main)

    def report(message: str) -> None:
        tqdm.write(f"colorgan: error: {message}", file=sys.stderr)

    result = colorize_dataset(args.dataset, args.output_dir, generator, settings, processes=processes,
                              image_column=args.image_column, output_column=args.output_column, split=args.split,
                              streaming=args.streaming, push_to_hub=args.push_to_hub, map_batch_size=args.map_batch_size,
                              batch_size=args.batch_size or default_batch_size(processes.device), workers=args.workers, on_error=report, on_progress=bar.update)
    bar.close()
    results = processes.gather(result)
    rows, done = sum(r.rows for r in results), sum(r.done for r in results)
    failures = [failure for r in results for failure in r.failures]
    if processes.is_main:
        where = " and ".join(filter(None, [args.output_dir, args.push_to_hub and f"the Hub ({args.push_to_hub})"]))
        summary = f"colorized {done} of {rows} row(s) of {args.dataset} into {where}"
        if failures:
            summary += f"; {len(failures)} failed (an empty {args.output_column!r} and the reason in {ERROR_COLUMN!r})"
        if processes.world > 1:
            summary += f" ({processes.world} processes)"
            summary += "".join(f"\n  failed: {message}" for _, message in failures)
        tqdm.write(summary, file=sys.stderr)
    processes.barrier()
    processes.close()
    return 1 if failures else 0

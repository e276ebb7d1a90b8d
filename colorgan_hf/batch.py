"""Colorizing many files: real batches, decoding and encoding overlapped, one share per process.

``colorgan colorize`` runs here, in one process or in many under ``accelerate launch``:

- every process computes the same sorted job list and the same output names (so names stay
  unique across processes); the main process decides which jobs are left to do (``--skip-
  existing``) and hands every process the same plan; each process takes every N-th of them;
- within a process, a thread pool decodes photos (and prepares their lightness) ahead of the
  network, the network runs on batches of photos grouped by working shape, and the same pool
  upsamples the chroma and encodes the results while the next batch runs;
- each process writes its own outputs atomically; the results of all processes are gathered,
  the main process prints one summary, and every process exits with the combined status.

The engine (:func:`run_batches`) knows nothing of processes or files: it colorizes whatever
its ``read`` and ``write`` functions take and give (:func:`colorize_share`: (input, output)
file pairs; :mod:`colorgan_hf.dataset_colorize`: dataset rows) and says what became of each.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from . import pipeline
from .errors import ColorGANError, ImageLoadError, OptionError, first_line
from .extras import require
from .files import input_file_problem, real_path
from .images import ImageMetadata, load_image, read_metadata, save_image_atomic

logger = logging.getLogger("colorgan")

DEFAULT_BATCH_SIZE = 8
# Decoded photos waiting for the network hold their lightness in float32 (4 bytes a pixel):
# above this many pixels waiting, the fullest group runs even if it is not a full batch.
MAX_PENDING_PIXELS = 64_000_000
# A process that finishes its share waits for the others this long at most (an archive's
# shares can differ by hours; the collectives' own default is 10-30 minutes).
GATHER_TIMEOUT = timedelta(days=7)


@dataclass
class ColorizeSettings:
    """What every photo of a run is colorized and written with (the CLI's flags)."""

    size: int = pipeline.DEFAULT_SIZE
    saturation: float = 1.0
    vividness: float | None = None
    # Stretch each photo's tones for the network (faded scans): pipeline.colorize's auto_contrast.
    auto_contrast: bool = False
    quality: int | None = None
    skip_existing: bool = False
    overwrite: bool = False
    # Run the network under bfloat16 autocast: about 2x faster on CPUs with AVX-512 BF16 (and on
    # recent GPUs); the colours differ slightly from float32's (bench/archive.py measures both).
    bf16: bool = False
    # Extra keyword arguments for :func:`colorgan_hf.pipeline.colorize` (e.g. colour hints):
    # when given, each photo goes through colorize() on its own (decode and encode still overlapped).
    colorize_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ShareResult:
    """What became of one process's share: counts, and (file, message) for each failure."""

    done: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: "ShareResult") -> "ShareResult":
        """Add ``other``'s counts and failures to this one; returns self."""
        self.done += other.done
        self.skipped += other.skipped
        self.failures.extend(other.failures)
        return self


# What a read function returns for a job that is to be left as it is.
SKIP = object()


class _Inline:
    """An executor that runs each call at once, in the caller's thread (``workers=0``)."""

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # noqa: BLE001 - handed to whoever reads the future, as a pool would
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def error_message(file: Path | str, error: BaseException) -> str:
    """One line for one file's failure: our own errors and OS errors as they are, anything else with its type."""
    if isinstance(error, (ColorGANError, OSError)):
        return str(error)
    return f"{file}: {type(error).__name__}: {error}"


@dataclass
class _Item:
    job: Any
    prepared: Any = None  # pipeline._Prepared, or a LoadedImage on the per-photo colorize() path
    metadata: ImageMetadata | None = None
    pixels: int = 0


def _target_state(source: Path, target: Path, settings: ColorizeSettings) -> bool:
    """True if ``target`` is to be left as it is (skipped); raises if it may not be written."""
    if target.exists():
        if settings.skip_existing:
            return True
        if not settings.overwrite:
            raise ColorGANError(f"{source}: output {target} exists (pass --skip-existing to leave it, --overwrite to replace it)")
    return False


def run_batches(
    jobs: Iterable[Any],
    generator: Any,
    settings: ColorizeSettings,
    *,
    read: Callable[[Any], Any],
    write: Callable[[Any, Any, ImageMetadata | None], bool],
    name: Callable[[Any], str] = str,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 2,
    photos_at_once: int = 1,
    on_error: Callable[[Any, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ShareResult:
    """The engine: colorize each of ``jobs``, in batches of one working shape, with reading and writing overlapped.

    Worker threads call ``read(job)`` (an image :func:`~colorgan_hf.images.load_image` takes and its
    metadata, or :data:`SKIP`) and prepare the photo's lightness; this thread runs the network on
    ``batch_size`` photos of the same working shape at a time; worker threads then put the chroma back
    at full resolution and call ``write(job, image, metadata)`` (False: skipped after all).

    Args:
        jobs: anything ``read`` and ``write`` understand (file pairs, dataset rows).
        generator: a loaded :class:`~colorgan_hf.models.ColorGenerator` (on ``device``) or ONNX generator.
        settings: the working resolution, saturation and vividness (and extra colorize() options).
        device: where the network runs (photos are decoded and encoded on the CPU).
        batch_size: photos of the same working shape that go through the network together.
        workers: threads that read, prepare, finish and write photos while the network runs;
            0 does everything in the calling thread, one photo after another.
        photos_at_once: above 1, that many threads each take whole photos (read, network, write)
            instead, and ``batch_size`` and ``workers`` are not used: on a CPU, photos side by
            side with one torch thread each keep the cores busier than every thread on one
            photo's operations (:func:`thread_plan`).
        name: how a job is named in error messages.
        on_error: called with the job and its one-line message as each failure happens.
        on_progress: called with a count each time photos are done, skipped or failed.

    Returns:
        a :class:`ShareResult`. One photo's failure, of any kind, is that photo's entry; only
        Ctrl-C (or SIGTERM turned into it) ends the run early, after the writes under way finish.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if photos_at_once < 1:
        raise ValueError(f"photos_at_once must be >= 1, got {photos_at_once}")
    result = ShareResult()
    per_photo = bool(settings.colorize_kwargs)  # colorize() on its own for each photo (extra options)
    device = torch.device(device)

    def progress(count: int) -> None:
        if on_progress is not None:
            on_progress(count)

    def fail(job: Any, error: BaseException) -> None:
        message = error_message(name(job), error)
        result.failures.append((name(job), message))
        if on_error is not None:
            on_error(job, message)
        progress(1)

    @torch.inference_mode()
    def load(job: Any) -> Any:
        outcome = read(job)
        if outcome is SKIP:
            return SKIP
        source, metadata = outcome
        loaded = load_image(source)
        if per_photo:
            return _Item(job, loaded, metadata, loaded.size[0] * loaded.size[1])
        prepared = pipeline._prepare(loaded, generator, settings.size, None, settings.auto_contrast)
        return _Item(job, prepared, metadata, prepared.l_full.numel())

    @torch.inference_mode()
    def finish(item: _Item, ab: torch.Tensor | None, image: Any = None) -> bool:
        if image is None:
            image = pipeline._finish(item.prepared, ab, settings.saturation)
        item.prepared = None  # the full-size lightness can go before the encoding
        return write(item.job, image, item.metadata)

    def alone(item: _Item) -> Any:
        """colorize() on one photo with the extra options (the per-photo path)."""
        return pipeline.colorize(item.prepared, generator, size=settings.size, saturation=settings.saturation,
                                 vividness=settings.vividness, auto_contrast=settings.auto_contrast, **settings.colorize_kwargs)

    @torch.inference_mode()
    def whole(job: Any) -> bool:
        """One photo from reading to writing, in a thread of its own (``photos_at_once``); False: skipped."""
        item = load(job)
        if item is SKIP:
            return False
        if per_photo:
            return finish(item, None, alone(item))
        return finish(item, network([item])[0])

    if photos_at_once > 1:
        executor: ThreadPoolExecutor | _Inline = ThreadPoolExecutor(photos_at_once, thread_name_prefix="colorgan-photo")
    else:
        executor = ThreadPoolExecutor(workers, thread_name_prefix="colorgan-io") if workers > 0 else _Inline()
    lookahead = max(2 * batch_size, 2 * workers, 1)
    loads: deque[tuple[Any, Future]] = deque()
    saves: deque[tuple[Any, Future]] = deque()
    groups: dict[tuple[int, ...], list[_Item]] = defaultdict(list)
    pending_pixels = 0
    queue = iter(jobs)

    def fill() -> None:
        while len(loads) < lookahead:
            job = next(queue, SKIP)
            if job is SKIP:
                return
            loads.append((job, executor.submit(load, job)))

    def reap(block: bool, keep: int = 0) -> None:
        """Count the finished writes (all of them with ``block``, else down to ``keep`` waiting)."""
        while len(saves) > keep and (block or saves[0][1].done()):
            job, future = saves.popleft()
            try:
                written = future.result()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # noqa: BLE001 - one photo's trouble is that photo's line
                fail(job, error)
                continue
            if written is False:
                result.skipped += 1
            else:
                result.done += 1
            progress(1)

    def network(items: list[_Item]) -> list[torch.Tensor]:
        batch = torch.cat([item.prepared.l_small for item in items]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16 and isinstance(generator, torch.nn.Module)):
            predicted = generator.predict_ab(batch, settings.vividness).float()
        if not torch.isfinite(predicted).all():
            names = ", ".join(name(item.job) for item in items)
            raise ColorGANError(f"{names}: the model gave non-finite colours (NaN or inf): are its weights finite?")
        return list(predicted.cpu() if predicted.device.type != "cpu" else predicted)

    def run(key: tuple[int, ...]) -> None:
        nonlocal pending_pixels
        items = groups.pop(key)
        pending_pixels -= sum(item.pixels for item in items)
        if per_photo:
            for item in items:
                try:
                    image = alone(item)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as error:  # noqa: BLE001
                    fail(item.job, error)
                    continue
                saves.append((item.job, executor.submit(finish, item, None, image)))
            return
        try:
            outputs = network(items)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - find which photo it was: each on its own
            outputs = []
            for item in items:
                try:
                    outputs.append(network([item])[0])
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as error:  # noqa: BLE001
                    fail(item.job, error)
                    outputs.append(None)
        for item, ab in zip(items, outputs):
            if ab is not None:
                saves.append((item.job, executor.submit(finish, item, ab)))

    context = pipeline._eval_mode(generator)
    try:
        with context, torch.inference_mode():
            if photos_at_once > 1:
                for job in jobs:
                    saves.append((job, executor.submit(whole, job)))
                    reap(block=False)
                    reap(block=True, keep=2 * photos_at_once)
                reap(block=True)
                return result
            fill()
            while loads:
                job, future = loads.popleft()
                fill()
                try:
                    item = future.result()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as error:  # noqa: BLE001
                    fail(job, error)
                    continue
                if item is SKIP:
                    result.skipped += 1
                    progress(1)
                    continue
                key = (0,) if per_photo else tuple(item.prepared.l_small.shape[2:])
                groups[key].append(item)
                pending_pixels += item.pixels
                if len(groups[key]) >= (1 if per_photo else batch_size):
                    run(key)
                while groups and pending_pixels > MAX_PENDING_PIXELS:
                    run(max(groups, key=lambda k: len(groups[k])))
                reap(block=False)
                reap(block=True, keep=2 * lookahead)  # a fast network waits for the encoders rather than pile up photos
            for key in list(groups):
                run(key)
            reap(block=True)
    finally:
        # Ctrl-C: the writes under way finish (each whole, under its final name); the rest are dropped.
        executor.shutdown(wait=True, cancel_futures=True)
    return result


def colorize_share(
    jobs: Sequence[tuple[Path, Path]],
    generator: Any,
    settings: ColorizeSettings,
    *,
    before_write: Callable[[Path], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    **options: Any,
) -> ShareResult:
    """Colorize each (input file, output file) of ``jobs`` with :func:`run_batches`.

    Each output is written atomically (a temporary name, then a rename) with the input's
    metadata; an output that exists is skipped with ``settings.skip_existing``, replaced with
    ``settings.overwrite``, else that file's failure. ``before_write`` is called with each
    output path before it is written or skipped (the CLI removes temporary files a killed run
    left there); ``on_error`` with each failure's message; ``options`` go to :func:`run_batches`.
    """

    def read(job: tuple[Path, Path]) -> Any:
        source, target = job
        if _target_state(source, target, settings):
            if before_write is not None:
                before_write(target)  # a killed run's leftovers beside a finished output go too
            return SKIP
        problem = input_file_problem(Path(source), "an image")
        if problem:  # before read_metadata opens it: a FIFO would block this thread, and the run, for ever
            raise ImageLoadError(f"{source}: {problem}")
        return source, read_metadata(source)

    def write(job: tuple[Path, Path], image: Any, metadata: ImageMetadata | None) -> bool:
        source, target = job
        if _target_state(source, target, settings):  # written meanwhile (another run into the same folder)
            return False
        if before_write is not None:
            before_write(target)
        save_image_atomic(image, target, metadata=metadata, quality=settings.quality)
        return True

    report = (lambda job, message: on_error(message)) if on_error is not None else None
    return run_batches(jobs, generator, settings, read=read, write=write, name=lambda job: str(job[0]), on_error=report, **options)


def jobs_digest(jobs: Sequence[tuple[Path, Path]]) -> str:
    digest = hashlib.sha256()
    for source, target in jobs:
        digest.update(f"{source}\0{target}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass
class Plan:
    """The main process's view of a run before it starts: which jobs are left to do."""

    pending: list[int]  # indices into the job list
    skipped: int
    failures: list[tuple[str, str]]
    digest: str  # of the job list: every process must have found the same inputs


def plan_jobs(jobs: Sequence[tuple[Path, Path]], settings: ColorizeSettings, input_files: set[Path],
              on_skip: Callable[[Path], None] | None = None) -> Plan:
    """Which of ``jobs`` are to run: an output that would overwrite an input, or exists without
    ``overwrite``/``skip_existing``, is that file's failure; with ``skip_existing`` an existing one is
    skipped (and ``on_skip`` called with it: the CLI removes a killed run's temporary files beside it)."""
    pending, failures, skipped = [], [], 0
    for index, (source, target) in enumerate(jobs):
        try:
            if real_path(target) in input_files:
                raise ColorGANError(f"{source}: output {target} would overwrite an input; choose another -o")
            if _target_state(source, target, settings):
                skipped += 1
                if on_skip is not None:
                    on_skip(target)
                continue
        except (ColorGANError, OSError) as error:
            failures.append((str(source), error_message(source, error)))
            continue
        pending.append(index)
    return Plan(pending, skipped, failures, jobs_digest(jobs))


def check_plan(plan: Plan, jobs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse to run if this process found other inputs than the main process (files added while starting)."""
    if plan.digest != jobs_digest(jobs):
        raise ColorGANError("the processes found different inputs (were files added or removed while the run started?): "
                            "start it again")


def launched_processes() -> int:
    """How many processes this run was launched as (``accelerate launch`` and ``torchrun`` set WORLD_SIZE)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's rank in a launch (``accelerate launch`` and ``torchrun`` set RANK); 0 alone.
    For what must be said once, before the processes' collectives are set up."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this process can use, else an :class:`OptionError` naming it and why.

    Both the name and its availability are tried here, before any work: torch otherwise says
    either only when the first weights move (a traceback half-way into the run).
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"--device {device}: not a device name (cpu, cuda, cuda:1, mps, ...)") from None
    try:
        torch.empty(0, device=resolved)
    except (RuntimeError, AssertionError, NotImplementedError) as error:  # no such backend in this torch, no such GPU
        # torch's complaint can run to several sentences: the first says it.
        raise OptionError(f"--device {device}: not available here ({first_line(error).split('. ')[0]})") from None
    return resolved


class Processes:
    """This process's place among those of the run: one, or many under ``accelerate launch``.

    A single process never imports Accelerate (a plain ``colorgan colorize`` stays light);
    many use :class:`accelerate.PartialState` for ranks, the device and the collectives.
    """

    def __init__(self, device: str | None = None) -> None:
        self._state = None
        chosen = resolve_device(device) if device else None
        if launched_processes() > 1:
            PartialState = require("accelerate", "running as several processes (accelerate launch)").PartialState
            # On CPUs (ACCELERATE_USE_CPU, --cpu, or no GPU at all) the processes talk over gloo.
            cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
            self._state = PartialState(cpu=cpu, timeout=GATHER_TIMEOUT)
        if self._state is not None:
            self.rank, self.world = self._state.process_index, self._state.num_processes
            self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
            self.device = chosen or self._state.device
        else:
            self.rank, self.world, self.local_world = 0, 1, 1
            self.device = chosen or torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def is_main(self) -> bool:
        """Whether this is the process that plans the run and prints its summary."""
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj``, on every process."""
        if self._state is None:
            return obj
        from accelerate.utils import broadcast_object_list

        box = [obj if self.is_main else None]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if self._state is None:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self._state is not None:
            self._state.wait_for_everyone()

    def close(self) -> None:
        """Leave the process group (no-op for one process)."""
        if self._state is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            with contextlib.suppress(Exception):
                self._state.destroy_process_group()


def default_batch_size(device: torch.device | str) -> int:
    """Photos per network call: 1 on a CPU (``bench/archive.py --network``: batches of 8 cost more per
    photo there, the activations outgrow the caches), :data:`DEFAULT_BATCH_SIZE` on an accelerator."""
    return 1 if torch.device(device).type == "cpu" else DEFAULT_BATCH_SIZE


def place_generator(generator: Any, device: torch.device | str) -> Any:
    """A torch generator ready for inference on ``device`` (an ONNX one is returned as it is).

    The result is a copy in eval mode whose batch normalizations are folded into the convolutions
    before them (about 10% less time a photo), on ``device``; on a CPU its weights are also in
    channels-last memory, where oneDNN's convolutions run the shipped U-Net in about 28% less
    time. The colours stay within one 8-bit level of the unchanged model's.
    """
    if not isinstance(generator, torch.nn.Module):
        return generator
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    generator = copy.deepcopy(generator).eval()
    for module in generator.modules():
        if isinstance(module, torch.nn.Sequential):
            for index in range(len(module) - 1):
                conv, norm = module[index], module[index + 1]
                if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d) and norm.track_running_stats \
                        and norm.running_mean is not None:
                    module[index], module[index + 1] = fuse_conv_bn_eval(conv, norm), torch.nn.Identity()
    generator.to(device)
    if torch.device(device).type == "cpu":
        generator.to(memory_format=torch.channels_last)
    return generator


# Photos in a process's share from which a CPU run puts one photo on each thread by default:
# fewer, and the last ones would leave cores idle.
PHOTOS_PER_THREAD_SIDE_BY_SIDE = 4


def thread_plan(device: torch.device | str, batch_size: int, photos: int, threads: int,
                photos_at_once: int | None = None) -> tuple[int, int]:
    """(photos at once, torch threads for each) for a process allowed ``threads`` threads.

    ``photos_at_once`` as asked, else on a CPU with photos one at a time through the network
    and at least :data:`PHOTOS_PER_THREAD_SIDE_BY_SIDE` photos a thread: one photo on each thread.
    ``bench/archive.py``: 2 photos x 1 thread each keep both cores of this 2-core machine busy,
    where 1 photo x 2 threads waits in each operation for the slower thread. Otherwise one
    photo at a time on all the threads (a single large photo finishes soonest so).
    """
    if photos_at_once is None:
        side_by_side = torch.device(device).type == "cpu" and batch_size == 1 and photos >= PHOTOS_PER_THREAD_SIDE_BY_SIDE * threads
        photos_at_once = threads if side_by_side else 1
    return photos_at_once, max(1, threads // photos_at_once)


def set_threads(generator: Any, threads: int) -> None:
    """Torch's threads, and an ONNX generator's, for this process."""
    torch.set_num_threads(threads)
    if hasattr(generator, "set_threads"):
        generator.set_threads(threads)


def native_bf16_cpu() -> bool:
    """Whether this CPU does bfloat16 arithmetic itself (AVX-512 BF16 or AMX), where ``--bf16``
    runs the network about twice as fast (elsewhere bfloat16 is emulated, and slower)."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def default_threads(local_processes: int) -> int:
    """Torch threads for one of ``local_processes`` processes on this machine: its share of the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_processes))

"""Colorize a video: :func:`colorize_video`, frame by frame on the photo pipeline, with steady colours.

Each frame goes the way a photo does (:mod:`colorgan_hf.pipeline`): its lightness L is
taken at full resolution, a small copy goes through the network, and the predicted a*b*
is upsampled and joined to the frame's own L. A network that sees each frame alone
guesses slightly different colours for the same thing from one frame to the next
(flicker), and drifts to another tint as a camera pans; :class:`ChromaStabilizer` replaces
each frame's predicted chroma by the average of the predictions for the same points in the
frames before and after it, moved along the optical flow wherever the frames show the same
thing, and starts afresh at a scene cut; the average's spread of colours within each frame
is then brought back to the network's own, which averaging guesses that differ flattens.

Decoding and encoding use PyAV (FFmpeg's libraries, bundled in its wheel: no system
ffmpeg is needed); the flow is OpenCV's DIS at the working resolution. Both are the
``video`` extra: ``pip install "colorgan-hf[video]"``. Frames stream through three
stages (decode, network and stabiliser, recombine and encode) joined by short queues, the
stabiliser holding at most one stretch of frames, so memory does not grow with the length
of the video, and decoding and encoding overlap the network.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .batch import place_generator
from .color import lightness
from .errors import ColorGANError, OptionError
from .extras import require
from .files import atomic_path, input_file_problem, real_path

logger = logging.getLogger(__name__)

# Short side of the working resolution for video (photos default to 256): the chroma is
# low-frequency and is joined to each frame's full-resolution lightness, and 160 keeps a
# 640x360 film above 10 frames/s end to end on two CPU cores (bench/video.py).
DEFAULT_VIDEO_SIZE = 160
# The shipped generator videos use unless told: the default pair's second, wider U-Net alone.
# The whole pair costs about four times the narrow U-Net per frame (a 640x360 clip under 10
# frames/s on two cores); the narrow one ("fast") is quicker, but its guess of a shot's
# overall tint flips as a camera pans, and a steady average of the flips is a gray one
# (bench/video.py's pan1; README, "Video").
DEFAULT_VIDEO_MODEL = "vivid"
# How much each frame takes from the frames around it (ChromaStabilizer): the weight of a
# frame k frames away is stability**k; 0 is frame by frame, 1 (the default) an even average
# over the shot, as far back as each point is tracked. bench/video.py measures it.
DEFAULT_STABILITY = 1.0
# Frames that go through the network together.
DEFAULT_BATCH = 4
# x264 constant-rate factor and preset of the output (18: visually lossless for most films).
DEFAULT_CRF = 18
DEFAULT_PRESET = "veryfast"
# Two frames "show the same thing" at a pixel when their lightness, after moving one
# onto the other along the flow, differs by about this many L* units or less.
MATCH_L = 6.0
# A pixel's match weight falls as exp(-(error / MATCH_L) ** MATCH_POWER): flat for small errors, so
# a point tracked through many well-matched frames keeps nearly its whole weight (with a power of
# 2 an error of 2 L* weighs 0.89 a frame, 0.10 after 20 frames; with 4, 0.99 and 0.78), then
# falling steeply where the frames stop showing the same thing.
MATCH_POWER = 4
# A scene cut: fewer than CUT_MIN_MATCHED of the pixels match (the previous frame, moved
# along the flow, is within MATCH_L of this one there; within a shot, 0.95 and more), or the
# moved frame is off by more than CUT_MEAN_L units of L* on average.
CUT_MEAN_L = 12.0
CUT_MIN_MATCHED = 0.5
# ChromaStabilizer works on stretches of at most SEGMENT_FRAMES frames of one shot (and of at
# most SEGMENT_MEMORY bytes of full-resolution lightness waiting for their colours, so the
# frames held do not grow with the video); consecutive stretches share OVERLAP_FRAMES frames,
# where one's colours fade into the next's, and the forward half of the average runs on from
# one stretch into the next (it looks only back), so a long shot does not restart its colours
# every stretch (bench/video.py, the real clip of 132 frames: flicker 0.187 -> 0.163).
SEGMENT_FRAMES = 96
MIN_SEGMENT_FRAMES = 24
OVERLAP_FRAMES = 12
SEGMENT_MEMORY = 256 * 2**20
# The stretch's average is taken AVERAGE_PASSES times, each of the one before's results: a
# wider, smoother window along each point's track, which takes out what the chained flows'
# small errors leave (bench/video.py, as written: one pass pan1 flicker 0.31, two 0.23; with
# MATCH_POWER 4, two passes zoom1 0.439 and the real clip 0.196, four 0.408 and 0.187; with the
# contrast restored (ChromaStabilizer._restore_contrast), four passes put the real clip at 0.518
# of frame by frame's flicker, eight at 0.477) for more remaps at the working size.
AVERAGE_PASSES = 8
# The DIS optical flow's preset (OpenCV): the averages chain a frame's neighbours through many
# flows, and the ultrafast preset's small errors add up to a smear that flickers (bench/video.py:
# pan1 2.08x the truth's flicker with it, 1.20x with medium, at about 4 ms a flow at 160x288).
FLOW_PRESET = 2  # cv2.DISOPTICAL_FLOW_PRESET_MEDIUM (OpenCV is imported only when a video is made)
# File name endings taken as videos by the CLI (anything else is treated as a photo).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".ogv", ".ts", ".mts", ".m2ts", ".3gp", ".vob", ".mxf", ".dv"})
# Containers written as they came; any other input is written as MP4.
KEEP_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Audio codecs an MP4/MOV file can carry as they are; others are re-encoded to AAC.
MP4_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "alac", "opus", "flac"})
QUEUE_FRAMES = 8  # frames waiting between two stages, at most


class VideoLoadError(ColorGANError, ValueError):
    """A video could not be read: missing, not a video, no video stream, or over a limit.

    The message names the file and the reason.
    """


def _av():
    return require("av", "video")


def _cv2():
    return require("cv2", "video")


def is_video_path(path: str | os.PathLike) -> bool:
    """True if ``path`` has a video file ending (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Every file with a video ending under ``folder``, recursively, in sorted order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_video_path(p))


def output_suffix(path: str | os.PathLike) -> str:
    """The ending of a colorized ``path``: MP4, MOV and MKV stay as they are, anything else becomes .mp4."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in KEEP_CONTAINERS else ".mp4"


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


@dataclass
class VideoInfo:
    """What a video's header (and its first frame's display matrix) says."""

    path: Path
    width: int  # in stored pixels, upright (the rotation applied); see pixel_aspect for the shape on screen
    height: int
    fps: Fraction  # the average frame rate
    frames: int | None  # as the header says (None when it does not)
    seconds: float | None  # duration of the video stream (or of the file)
    audio: bool  # has an audio stream
    codec: str
    rotation: int = 0  # degrees counter-clockwise that players turn the stored frames by (0, 90, 180, 270)
    pixel_aspect: Fraction = Fraction(1)  # width / height of a pixel as displayed (anamorphic video: not 1)
    interlaced: bool = False  # its first frame is interlaced (two fields, TV style): deinterlaced when colorized

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the frames as decoded, before the rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def _open_input(path: Path):
    av = _av()
    problem = input_file_problem(path, "a video")
    if problem:
        raise VideoLoadError(f"{path}: {problem}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoLoadError(f"{path}: not a video that can be read ({_reason(error)})") from None
    if not container.streams.video:
        container.close()
        raise VideoLoadError(f"{path}: has no video stream (not a video)")
    return container


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(": '")[0].strip() or type(error).__name__


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read ``path``'s header (size, frame rate, frame count and duration, audio or not, pixel
    aspect) and decode its first frame for what only a frame tells (display rotation, interlacing).

    Raises:
        VideoLoadError: the file is missing or not a readable video.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        context = stream.codec_context
        if not context.width or not context.height:
            raise VideoLoadError(f"{path}: the video stream has no frame size (not a video that can be read)")
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        frames = stream.frames or (round(seconds * fps) if seconds else None)
        rotation, interlaced = _first_frame_facts(_av(), container, stream)
        width, height = (context.height, context.width) if rotation % 180 else (context.width, context.height)
        aspect = Fraction(stream.sample_aspect_ratio or context.sample_aspect_ratio or 1)
        if aspect <= 0:
            aspect = Fraction(1)
        return VideoInfo(path, width, height, Fraction(fps), frames or None, seconds,
                         bool(container.streams.audio), context.name, rotation, 1 / aspect if rotation % 180 else aspect,
                         interlaced)
    finally:
        container.close()


# Packets read to find the first frame that decodes (damaged ones are skipped, as when colorizing).
FIRST_FRAME_PACKETS = 256


def _first_frame_facts(av, container, stream) -> tuple[int, bool]:
    """What only a decoded frame tells: the display rotation of ``stream`` (a phone's portrait
    video is stored on its side, with a display matrix that players turn it by), rounded to a
    quarter turn, and whether it is interlaced, from the first frame that decodes within
    :data:`FIRST_FRAME_PACKETS` packets. (0, False) when none does (colorizing reports why)."""
    try:
        for count, frames in enumerate(_packet_frames(av, container, stream)):
            if count >= FIRST_FRAME_PACKETS:
                break
            if frames:
                angle = getattr(frames[0], "rotation", 0) or 0
                return int(round(angle / 90.0)) % 4 * 90, bool(frames[0].interlaced_frame)
    except (av.FFmpegError, IndexError, ValueError):
        pass
    return 0, False


def _packet_frames(av, container, stream) -> Iterator[list[Any] | None]:
    """Each packet of ``stream`` decoded: its frames, or None for a packet that does not decode
    (a damaged stretch of an old file, skipped as FFmpeg's own tools do)."""
    for packet in container.demux(stream):
        try:
            yield packet.decode()
        except av.InvalidDataError:
            yield None


# FFmpeg's bwdif: each interlaced frame made progressive, one frame out for each frame in (the
# frame rate kept); frames not flagged interlaced pass as they are.
DEINTERLACE = ("bwdif", "mode=send_frame:parity=auto:deint=interlaced")


def _deinterlaced(av, frames: Iterator[Any], source: Path) -> Iterator[Any]:
    """``frames`` deinterlaced (:data:`DEINTERLACE`), with their timestamps. Interlaced video
    (TV and VHS transfers of old films) woven into progressive frames shows combs wherever
    something moves: the network would colour them and the optical flow mistrack them.

    The filter is set up for the first frame's size and pixel format; a later frame of
    another size or format is converted to them first (a filter graph cannot change them
    mid-stream, and the frames are brought to one size afterwards anyway)."""
    graph = None
    shape: tuple[int, int, str] | None = None

    def drained() -> Iterator[Any]:
        while True:
            try:
                yield graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return

    def failed(error: Exception) -> VideoLoadError:
        return VideoLoadError(f"{source}: the interlaced video could not be deinterlaced ({_reason(error)})")

    for frame in frames:
        try:
            if graph is None:
                shape = (frame.width, frame.height, frame.format.name)
                graph = av.filter.Graph()
                buffer = graph.add_buffer(width=shape[0], height=shape[1], format=shape[2], time_base=frame.time_base)
                deinterlace, sink = graph.add(*DEINTERLACE), graph.add("buffersink")
                buffer.link_to(deinterlace)
                deinterlace.link_to(sink)
                graph.configure()
            elif (frame.width, frame.height, frame.format.name) != shape:
                frame = frame.reformat(width=shape[0], height=shape[1], format=shape[2])
            graph.push(frame)
        except (av.FFmpegError, ValueError) as error:
            raise failed(error) from None
        yield from drained()
    if graph is not None:
        try:
            graph.push(None)
        except (av.FFmpegError, ValueError) as error:
            raise failed(error) from None
        yield from drained()


# ------------------------------------------------------------------------------------------
# Steady colours
# ------------------------------------------------------------------------------------------


class _Seen:
    """One frame as the stabiliser keeps it, at the working resolution."""

    def __init__(self, gray: np.ndarray, lightness_: np.ndarray, ab: np.ndarray) -> None:
        self.gray, self.lightness, self.ab = gray, lightness_, ab  # (h, w) uint8, (h, w) L, (h, w, 2) predicted a*b*
        self.backward: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the previous frame moved onto this one
        self.forward: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the next frame moved onto this one


class ChromaStabilizer:
    """Steady a*b* across frames: each frame's colours become the average of the network's
    predictions for the same points of the scene in the frames before and after it, moved
    onto it along the optical flow.

    A network that sees each frame alone guesses slightly different colours for the same
    thing from frame to frame, and drifts to another overall tint as a camera pans. Averaging
    a point's predictions over the frames that show it takes out both (and, the frames'
    guesses being many, is about as close to the truth as they are on average:
    ``bench/video.py``). The average is two-sided: a frame also takes from the frames after
    it, so a shot has no colours fixed by its first frame. Guesses that differ in detail
    average to a flatter picture than any of them, so each stretch's spread of colours
    around each frame's mean is then scaled back to the guesses' own (never down), the
    mean and the steadiness kept.

    Works at the working resolution. The DIS optical flow between neighbouring frames (on
    their lightness) moves one onto the other; a pixel *matches* where the moved lightness is
    within about :data:`MATCH_L` of the frame's own (not something uncovered, occluded, or
    from outside the frame), and only matched pixels carry colours on. A frame ``k`` frames
    away weighs ``strength**k`` (0: frame by frame; 1: an even average). When the frames do
    not match as a whole (a scene cut: :data:`CUT_MEAN_L`, :data:`CUT_MIN_MATCHED`), the new
    shot starts afresh; those frames' indices are kept in :attr:`cuts`.

    Frames are averaged in stretches of at most ``segment_frames`` (a frame's result waits
    until its stretch is complete, or a cut or :meth:`flush` ends it); consecutive stretches
    of one shot share ``overlap`` frames, over which the colours of one fade into the next's;
    the forward half of the average (which looks only back) runs on across them, so a shot's
    colours are an average over all of it that the frames track, not restarted each stretch.
    :meth:`push` takes each frame in order and returns the results now final, in order.
    """

    def __init__(self, strength: float = DEFAULT_STABILITY, segment_frames: int = SEGMENT_FRAMES,
                 overlap: int = OVERLAP_FRAMES) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"stability must be in [0, 1], got {strength}")
        if segment_frames < 2 or not 0 <= 2 * overlap < segment_frames:
            raise ValueError(f"segment_frames must be at least 2 and more than twice overlap, got {segment_frames} and {overlap}")
        self.strength, self.segment_frames, self.overlap = strength, segment_frames, overlap
        self.cuts: list[int] = []
        self._index = 0
        self._frames: list[_Seen] = []  # the stretch under way
        self._fade: list[np.ndarray] = []  # the previous stretch's results for its first frames
        self._carry: list[tuple[np.ndarray, np.ndarray]] | None = None  # its forward sums there, each pass
        self._flow = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def push(self, l_small: torch.Tensor, ab: torch.Tensor) -> list[torch.Tensor]:
        """``l_small`` (1, h, w) L in [0, 100] and ``ab`` (2, h, w) predicted a*b* of the next
        frame -> the steadied a*b* (2, h, w) of the frames whose results are now final, oldest first."""
        index, self._index = self._index, self._index + 1
        if self.strength == 0.0:
            return [ab]
        l_now = np.ascontiguousarray(l_small[0].float().cpu().numpy())
        seen = _Seen(np.clip(l_now * 2.55 + 0.5, 0, 255).astype(np.uint8), l_now,
                     np.ascontiguousarray(ab.float().cpu().permute(1, 2, 0).numpy()))
        ready: list[torch.Tensor] = []
        if self._frames:
            last = self._frames[-1]
            backward = self._align(seen, last) if last.gray.shape == seen.gray.shape else None
            if backward is None:
                self.cuts.append(index)
                ready += self._finish(whole=True)
            else:
                seen.backward, last.forward = backward, self._align(last, seen, check=False)
        self._frames.append(seen)
        if len(self._frames) == self.segment_frames:
            ready += self._finish(whole=False)
        return ready

    def flush(self) -> list[torch.Tensor]:
        """The results of the frames still held (at the end of the video), oldest first."""
        return self._finish(whole=True) if self._frames else []

    def _align(self, now: _Seen, other: _Seen, check: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The remap of ``other`` onto ``now`` and each pixel's match weight; None at a scene cut (with ``check``)."""
        cv2 = _cv2()
        if self._flow is None:
            self._flow = cv2.DISOpticalFlow_create(FLOW_PRESET)
        if self._grid is None or self._grid[0].shape != now.gray.shape:
            ys, xs = np.mgrid[0 : now.gray.shape[0], 0 : now.gray.shape[1]].astype(np.float32)
            self._grid = (xs, ys)
        flow = self._flow.calc(now.gray, other.gray, None)  # now(x) ~ other(x + flow(x))
        map_x, map_y = self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]
        height, width = now.gray.shape
        inside = (map_x >= -0.5) & (map_x <= width - 0.5) & (map_y >= -0.5) & (map_y <= height - 0.5)
        error = np.abs(_moved(cv2, other.lightness, map_x, map_y) - now.lightness)
        if check:
            matched = float((inside & (error < MATCH_L)).mean())
            mean_error = float(error[inside].mean()) if inside.any() else math.inf
            if matched < CUT_MIN_MATCHED or mean_error > CUT_MEAN_L:
                return None
        return map_x, map_y, (inside * np.exp(-((error / MATCH_L) ** MATCH_POWER))).astype(np.float32)

    def _finish(self, whole: bool) -> list[torch.Tensor]:
        """Average the stretch; hand on its results but (unless ``whole``) the last ``overlap``,
        which begin the next stretch (and the forward sums there, which it carries on)."""
        done = len(self._frames) if whole else len(self._frames) - self.overlap
        results, self._carry = self._average(self._frames, self._carry, done if done < len(self._frames) else None)
        for i, before in enumerate(self._fade):
            weight = (i + 1) / (len(self._fade) + 1)
            results[i] = (1.0 - weight) * before + weight * results[i]
        self._fade = results[done:]
        self._frames = self._frames[done:]
        if self._frames:
            self._frames[0].backward = None  # the next stretch starts here
        return [torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1), dtype=np.float32)) for r in results[:done]]

    def _average(self, frames: list[_Seen], carry: list[tuple[np.ndarray, np.ndarray]] | None, keep: int | None
                 ) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]] | None]:
        """Each frame's strength-weighted average of the matched predictions of the stretch, both
        ways, taken :data:`AVERAGE_PASSES` times (each pass averages the one before's results).

        ``carry``: for each pass, the forward sweep's sums and counts at the stretch's first
        frame, from the stretch before it (the forward sweep looks only back, so it runs on
        across stretches and a long shot's colours do not restart at each stretch). Returns the
        results and, for each pass, the forward sums and counts at frame ``keep`` (None: none),
        where the next stretch begins."""
        cv2 = _cv2()
        decay = self.strength
        n = len(frames)

        def sweep(values: list[np.ndarray], order: range, link: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray] | None],
                  step: int, start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[list[Any], list[Any]]:
            sums: list[Any] = [None] * n
            counts: list[Any] = [None] * n
            if start is not None:  # the stretch before's sums at this first frame
                sums[order[0]], counts[order[0]] = start[0].copy(), start[1].copy()
                order = order[1:]
            for t in order:
                sums[t], counts[t] = values[t].copy(), np.ones(frames[t].gray.shape, np.float32)
                moved = link(t)
                if moved is not None:
                    map_x, map_y, match = moved
                    weight = decay * match
                    sums[t] += weight[..., None] * _moved(cv2, sums[t - step], map_x, map_y)
                    counts[t] += weight * _moved(cv2, counts[t - step], map_x, map_y)
            return sums, counts

        values = [frame.ab for frame in frames]
        forward: list[tuple[np.ndarray, np.ndarray]] | None = [] if keep is not None else None
        for p in range(AVERAGE_PASSES):
            ahead_sums, ahead_counts = sweep(values, range(n), lambda t: frames[t].backward if t > 0 else None, 1,
                                             carry[p] if carry is not None else None)
            if forward is not None:
                forward.append((ahead_sums[keep], ahead_counts[keep]))
            behind_sums, behind_counts = sweep(values, range(n - 1, -1, -1), lambda t: frames[t].forward if t < n - 1 else None, -1)
            # Both sweeps count the frame itself once.
            values = [(ahead_sums[t] + behind_sums[t] - values[t]) / (ahead_counts[t] + behind_counts[t] - 1.0)[..., None]
                      for t in range(n)]
        return self._restore_contrast(values, frames), forward

    @staticmethod
    def _restore_contrast(values: list[np.ndarray], frames: list[_Seen]) -> list[np.ndarray]:
        """The stretch's averages with their chroma contrast (each frame's RMS distance of a*b*
        from its own mean) scaled back up to the network's guesses' own, never down.

        Guesses that differ in detail from frame to frame average to a flatter picture than
        any of them: on the real clip of bench/video.py the average alone was 5.8% less
        colourful than frame by frame. Only the spread around each frame's mean is scaled,
        one gain for the stretch: the mean (the overall tint, where the guesses of a pan
        disagree most and the average is the nearer the truth) and the steadiness over time
        are the average's."""
        def centred(ab: np.ndarray) -> np.ndarray:
            return ab - ab.reshape(-1, 2).mean(axis=0)

        def rms(offsets: np.ndarray) -> float:
            return float(np.sqrt(np.square(offsets).sum(axis=-1).mean()))

        offsets = [centred(v) for v in values]  # each average's spread, scaled below
        guessed, steadied = sum(rms(centred(f.ab)) for f in frames), sum(rms(o) for o in offsets)
        if guessed <= steadied or steadied <= 1e-6:
            return values
        gain = guessed / steadied
        # mean + gain * offset, the mean being value - offset
        return [(v + (gain - 1.0) * o).astype(np.float32) for v, o in zip(values, offsets)]


def _moved(cv2, image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``image`` (h, w) or (h, w, C) sampled at (map_x, map_y), bilinear, edges replicated."""
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(image.shape)


def segment_frames(width: int, height: int) -> int:
    """Frames per stabiliser stretch for frames of ``width`` x ``height``: as many as
    :data:`SEGMENT_MEMORY` of their full-resolution lightness holds, within
    [:data:`MIN_SEGMENT_FRAMES`, :data:`SEGMENT_FRAMES`]."""
    return int(min(SEGMENT_FRAMES, max(MIN_SEGMENT_FRAMES, SEGMENT_MEMORY // (4 * width * height))))


# ------------------------------------------------------------------------------------------
# The three stages
# ------------------------------------------------------------------------------------------

_END = object()


class _Stage(threading.Thread):
    """A daemon thread running ``work(put)``; an exception it raises is handed to the consumer."""

    def __init__(self, name: str, work: Callable[[Callable[[Any], None]], None], out: queue.Queue | None) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.out, self.error = work, out, None
        self.stop = threading.Event()

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run(self) -> None:
        try:
            self.work(self.put)
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed over to the thread that waits
            self.error = error
        finally:
            if self.out is not None:
                with contextlib.suppress(_Stopped):
                    self.put(_END)


class _Stopped(Exception):
    pass


def _get(source: queue.Queue, stage: _Stage | None, stop: threading.Event | None = None) -> Any:
    """The next item of ``source``; the producer ``stage``'s exception is raised here. With no
    stage (the producer is the calling thread's owner), waits until ``stop`` is set."""
    while True:
        try:
            item = source.get(timeout=0.1)
        except queue.Empty:
            if stop is not None and stop.is_set():
                raise _Stopped from None
            if stage is not None and not stage.is_alive() and source.empty():
                item = _END
            else:
                continue
        if item is _END and stage is not None and stage.error is not None:
            raise stage.error
        return item


@dataclass
class _Frame:
    index: int
    pts: int | None
    time_base: Fraction | None
    l_full: torch.Tensor  # (1, 1, H, W)
    l_small: torch.Tensor  # (1, 1, h, w)
    ab: torch.Tensor | None = None


@dataclass
class VideoResult:
    """What :func:`colorize_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float  # the output's duration
    audio: bool  # the audio stream was kept
    cuts: list[int] = field(default_factory=list)  # frames where the stabiliser started afresh
    elapsed: float = 0.0  # seconds, decode to encode
    damaged_packets: int = 0  # packets that did not decode and were skipped (their frames are missing)

    @property
    def frames_per_second(self) -> float:
        """Throughput: frames colorized a second, end to end."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


def video_generator(model: Any = None):
    """The generator a video is colorized with: as :func:`colorgan_hf.colorize` takes it, ``None``
    giving :data:`DEFAULT_VIDEO_MODEL`."""
    from .pipeline import _generator

    return _generator(DEFAULT_VIDEO_MODEL if model is None else model)


def _even(side: int) -> int:
    return side + (side & 1)


@torch.inference_mode()
def colorize_video(
    source: str | os.PathLike,
    out_path: str | os.PathLike,
    model: Any = None,
    *,
    size: int = DEFAULT_VIDEO_SIZE,
    stability: float = DEFAULT_STABILITY,
    saturation: float = 1.0,
    vividness: float | None = None,
    batch_size: int = DEFAULT_BATCH,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    max_seconds: float | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    progress: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Colorize the video ``source`` into ``out_path`` (H.264, yuv420p; the audio kept).

    The output has the input's frame rate, frame timing (so its duration) and size (an odd
    width or height is padded by one pixel: yuv420p needs even sides) and pixel aspect. A
    video stored on its side with a display rotation (a phone's portrait video) is colorized
    and written upright, as players show it; interlaced video is deinterlaced (written
    progressive). A packet that does not decode is skipped with a warning. The output is
    written to a temporary name beside ``out_path`` and renamed when complete; an error or
    interrupt leaves nothing under ``out_path``. The audio stream (the first) is copied as
    it is, or re-encoded to AAC when the output container cannot carry its codec. Memory
    does not grow with the video's length: frames stream through short queues.

    Args:
        source: the video file (anything FFmpeg reads: MP4, MOV, MKV, AVI, WebM, ...).
        out_path: the file to write; ``.mp4``, ``.m4v``, ``.mov`` and ``.mkv`` choose their
            container, anything else gets MP4.
        model: as :func:`colorgan_hf.colorize` (``None``: the shipped ``"vivid"`` model,
            :data:`DEFAULT_VIDEO_MODEL`, the default pair's second U-Net alone).
        size: short side of the working resolution the network runs at (default 160: a
            video's chroma is recombined with each frame's full-resolution lightness).
        stability: 0 to 1, how much each frame takes from the motion-compensated colours of
            the frames around it (:class:`ChromaStabilizer`; 0: frame by frame; default 1,
            an even average over the shot: back to its start, ahead up to about 4 s).
        saturation: multiplies the chroma (0: gray).
        vividness: as :func:`colorgan_hf.colorize`, for models that predict a distribution.
        batch_size: frames that go through the network together.
        crf: x264 quality, 0 (lossless) to 51 (worst); default 18.
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``).
        max_seconds, max_frames: refuse a longer video (checked on the header, and while decoding).
        max_pixels: refuse frames with more pixels than this.
        progress: show a tqdm bar (frames and frames/s).
        on_frame: called with the number of frames written so far, after each frame.

    Returns:
        a :class:`VideoResult` (frames, size, frame rate, duration, audio, cuts, throughput).

    Raises:
        VideoLoadError: the input is missing, not a video, or over a limit.
        OptionError: an option is out of range or not a finite number.
    """
    from .pipeline import _device, _eval_mode, _finish, _Prepared, check_options, working_lightness, working_shape

    av = _av()
    _cv2()
    check_options(saturation, vividness, batch_size, max_pixels)
    if not 0 <= crf <= 51:
        raise OptionError(f"crf must be between 0 and 51, got {crf}")
    if not 0.0 <= stability <= 1.0:
        raise OptionError(f"stability must be in [0, 1], got {stability}")
    # Written so that NaN fails them: a NaN limit would otherwise be no limit.
    if max_seconds is not None and not max_seconds > 0:
        raise OptionError(f"max_seconds must be > 0, got {max_seconds}")
    if max_frames is not None and not max_frames >= 1:
        raise OptionError(f"max_frames must be >= 1, got {max_frames}")
    source, out_path = Path(source), Path(out_path)
    info = probe_video(source)
    stabilizer = ChromaStabilizer(stability, segment_frames(info.width, info.height))
    name = source.name
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise VideoLoadError(f"{source}: frames of {info.width}x{info.height} are over the limit of {max_pixels:,} pixels")
    if max_seconds is not None and info.seconds is not None and info.seconds > max_seconds + 0.5 / float(info.fps):
        raise VideoLoadError(f"{source}: {info.seconds:.1f} s long, over the limit of {max_seconds:g} s")
    if max_frames is not None and info.frames is not None and info.frames > max_frames:
        raise VideoLoadError(f"{source}: {info.frames} frames, over the limit of {max_frames}")
    generator = video_generator(model)
    device = _device(generator)
    generator = place_generator(generator, device)  # folded normalizations, channels-last weights on a CPU
    # The network sees the picture in its displayed proportions (an anamorphic DVD's pixels are not square).
    shape = working_shape(info.height, max(1, round(info.width * info.pixel_aspect)), generator, size)
    width, height = _even(info.width), _even(info.height)
    if (width, height) != (info.width, info.height):
        logger.warning("%s: %dx%d has an odd side; written as %dx%d (H.264 yuv420p needs even sides)",
                       name, info.width, info.height, width, height)
    frame_limit = max_frames
    if max_seconds is not None:
        frame_limit = min(frame_limit or math.inf, math.floor(max_seconds * float(info.fps)) + 1)
    fmt = KEEP_CONTAINERS.get(out_path.suffix.lower(), "mp4")
    start = time.perf_counter()

    # Stage 1: decode, take each frame's lightness at full and working resolution.
    decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
    damage = {"packets": 0}

    def decode(put: Callable[[Any], None]) -> None:
        container = _open_input(source)
        try:
            stream = container.streams.video[0]
            # Slice threads, not frame threads: on a randomly damaged MPEG-TS, PyAV's default
            # (frame and slice) threads raised the damaged packet's error at the end and lost
            # the 3 frames decoded after it (71 of 75 frames, against 74). Decoding is far from
            # the slowest stage: some 180 frames/s at 1080p here.
            stream.thread_type = "SLICE"
            # Closed when this stage ends, early or not: its warning comes with the run.
            with contextlib.closing(_decode_frames(av, container, stream, source, damage)) as decoded_frames:
                for index, frame in enumerate(_deinterlaced(av, decoded_frames, source) if info.interlaced
                                              else decoded_frames):
                    if frame_limit is not None and index >= frame_limit:
                        raise VideoLoadError(f"{source}: longer than the limit of "
                                             + (f"{max_seconds:g} s" if max_seconds is not None else f"{max_frames} frames"))
                    if (frame.width, frame.height) != info.stored_size:
                        frame = frame.reformat(width=info.stored_size[0], height=info.stored_size[1])
                    # Upright, as players show it: the network was trained on upright photos, and the
                    # output is written upright with no display matrix.
                    pixels = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), info.rotation // 90))
                    rgb = torch.from_numpy(pixels).permute(2, 0, 1)
                    l_full = lightness(rgb)[None]
                    l_small = working_lightness(l_full, shape)
                    put(_Frame(index, frame.pts, frame.time_base, l_full, l_small))
        finally:
            container.close()

    # Stage 3: recombine with the full-resolution lightness, encode, mux (audio interleaved).
    colored: queue.Queue = queue.Queue(QUEUE_FRAMES)
    written = {"frames": 0, "audio": False, "seconds": 0.0}
    bar_holder: dict[str, Any] = {}

    def encode(tmp: Path) -> Callable[[Callable[[Any], None]], None]:
        def work(put: Callable[[Any], None]) -> None:
            _encode(av, source, tmp, fmt, info, width, height, crf, preset, colored, encoder_stage.stop, saturation,
                    _finish, _Prepared, written, bar_holder.get("bar"), on_frame)
        return work

    target_dir = out_path.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=info.frames, desc=f"Colorizing {name}", unit="frame", leave=True, dynamic_ncols=True)
        bar_holder["bar"] = bar
    decoder_stage = _Stage("colorgan-decode", decode, decoded)
    try:
        with atomic_path(out_path) as tmp, _eval_mode(generator):
            encoder_stage = _Stage("colorgan-encode", encode(tmp), None)
            decoder_stage.start()
            encoder_stage.start()
            try:
                _predict(decoded, decoder_stage, colored, encoder_stage, generator, device, batch_size, vividness,
                         stabilizer, name)
                encoder_stage.join()
            finally:
                decoder_stage.stop.set()
                encoder_stage.stop.set()
                decoder_stage.join()
                encoder_stage.join()
            if encoder_stage.error is not None:
                raise encoder_stage.error
            if decoder_stage.error is not None:
                raise decoder_stage.error
            if written["frames"] == 0:
                raise VideoLoadError(f"{source}: no frame could be decoded")
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    return VideoResult(out_path, written["frames"], width, height, info.fps, written["seconds"], written["audio"],
                       list(stabilizer.cuts), elapsed, damage["packets"])


def _decode_frames(av, container, stream, source: Path, damage: dict[str, int] | None = None) -> Iterator[Any]:
    """The video frames of ``stream``.

    A packet that does not decode (a damaged stretch of an old file) is skipped, as FFmpeg's
    own tools do, and counted in a warning (and in ``damage["packets"]``): its frames are
    missing from the output, the rest keep their timing. A file that cannot be read on ends
    with a clear error."""
    damage = {"packets": 0} if damage is None else damage
    try:
        for frames in _packet_frames(av, container, stream):
            if frames is None:
                damage["packets"] += 1
            else:
                yield from frames
    except (av.FFmpegError, IndexError) as error:  # IndexError: PyAV, on a packet of a stream the header did not list
        raise VideoLoadError(f"{source}: the video could not be decoded ({_reason(error)})") from None
    finally:
        if damage["packets"]:
            logger.warning("%s: %d damaged packet(s) could not be decoded and were skipped (their frames are missing)",
                           source, damage["packets"])


def _predict(decoded: queue.Queue, decoder: _Stage, colored: queue.Queue, encoder: _Stage, generator, device,
             batch_size: int, vividness: float | None, stabilizer: ChromaStabilizer, name: str) -> None:
    """Stage 2 (this thread): the network on batches of frames, then the stabiliser in order (it
    hands each frame on once its colours are final: up to a stretch of frames later)."""

    def hand_on(item: Any) -> None:
        while True:
            if not encoder.is_alive():
                if encoder.error is not None:
                    raise encoder.error
                raise ColorGANError(f"{name}: the encoder stopped")
            try:
                colored.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    waiting: collections.deque[_Frame] = collections.deque()  # frames whose colours the stabiliser still holds

    def hand_on_steady(steadied: list[torch.Tensor]) -> None:
        """The oldest waiting frames, with their final colours, in order."""
        for ab in steadied:
            frame = waiting.popleft()
            frame.ab = ab
            hand_on(frame)

    batch: list[_Frame] = []
    finished = False
    while not finished:
        item = _get(decoded, decoder)
        if item is _END:
            finished = True
        else:
            batch.append(item)
        if batch and (finished or len(batch) == batch_size):
            l_small = torch.cat([frame.l_small for frame in batch]).to(device)
            predicted = generator.predict_ab(l_small, vividness).float().cpu()
            if not torch.isfinite(predicted).all():
                raise ColorGANError(f"{name}: the model gave non-finite colours (NaN or inf): are its weights finite?")
            for frame, ab in zip(batch, predicted):
                waiting.append(frame)
                hand_on_steady(stabilizer.push(frame.l_small[0], ab))
            batch = []
    hand_on_steady(stabilizer.flush())
    hand_on(_END)


def _encode(av, source: Path, tmp: Path, fmt: str, info: VideoInfo, width: int, height: int, crf: int, preset: str,
            colored: queue.Queue, stop: threading.Event, saturation: float, finish, prepared_type, written: dict, bar,
            on_frame) -> None:
    """Stage 3: full-resolution recombination, H.264 encoding and muxing, with the audio interleaved."""
    audio_in = None
    output = av.open(str(tmp), "w", format=fmt)
    try:
        reference = av.open(str(source), metadata_errors="ignore")
        in_video = reference.streams.video[0]
        time_base = in_video.time_base or Fraction(1, 90000)
        out_video = output.add_stream("libx264", rate=info.fps)
        out_video.width, out_video.height, out_video.pix_fmt = width, height, "yuv420p"
        out_video.time_base = time_base
        out_video.codec_context.time_base = time_base
        out_video.options = {"crf": str(crf), "preset": preset}
        if info.pixel_aspect != 1:
            out_video.codec_context.sample_aspect_ratio = info.pixel_aspect
        out_audio, audio_packets, transcoder = None, None, None
        if reference.streams.audio:
            audio_in = reference.streams.audio[0]
            out_audio, audio_packets, transcoder = _audio_route(av, output, fmt, audio_in, reference)
        else:
            reference.close()
        first_pts, last_pts, step = None, None, None
        frame_step = (1 / (info.fps or 25)) / time_base
        pending_audio = None
        while True:
            item = _get(colored, None, stop)
            if item is _END:
                break
            image = finish(prepared_type(source.name, None, item.l_full, None), item.ab, saturation)
            pixels = np.asarray(image)
            if pixels.shape[:2] != (height, width):
                pixels = np.pad(pixels, ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            pts = item.pts
            if pts is not None and item.time_base is not None and item.time_base != time_base:
                pts = round(pts * item.time_base / time_base)
            if pts is None or (last_pts is not None and pts <= last_pts):
                pts = 0 if last_pts is None else last_pts + max(1, round(frame_step))
            step = pts - last_pts if last_pts is not None else step
            first_pts = pts if first_pts is None else first_pts
            last_pts = pts
            frame.pts, frame.time_base = pts, time_base
            for packet in out_video.encode(frame):
                output.mux(packet)
            if out_audio is not None:
                pending_audio = _mux_audio_until(output, out_audio, audio_packets, transcoder, float(pts * time_base), pending_audio)
            written["frames"] += 1
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(written["frames"])
        for packet in out_video.encode(None):
            output.mux(packet)
        if out_audio is not None:
            _mux_audio_until(output, out_audio, audio_packets, transcoder, math.inf, pending_audio)
            written["audio"] = True
        if last_pts is not None:
            written["seconds"] = float((last_pts - first_pts + (step or round(frame_step))) * time_base)
    finally:
        output.close()
        if audio_in is not None:
            audio_in.container.close()


def _audio_route(av, output, fmt: str, audio_in, reference):
    """The output audio stream: a copy of ``audio_in`` where the container takes its codec,
    else AAC; with the iterator of its input packets and, for AAC, the transcoder."""
    codec = audio_in.codec_context.name
    packets = (p for p in reference.demux(audio_in) if p.dts is not None or p.size)
    if fmt == "matroska" or codec in MP4_AUDIO:
        return output.add_stream_from_template(audio_in), packets, None
    rate = audio_in.codec_context.sample_rate or 48000
    out_audio = output.add_stream("aac", rate=rate)
    out_audio.layout = "mono" if audio_in.codec_context.channels == 1 else "stereo"  # more channels: down-mixed
    logger.info("%s: its %s audio is re-encoded to AAC for the %s container", reference.name, codec, fmt)
    return out_audio, packets, audio_in


def _mux_audio_until(output, out_audio, packets, transcoder, until: float, pending):
    """Mux the audio packets that start before ``until`` seconds; returns the first one that does not."""
    while True:
        packet = pending if pending is not None else next(packets, None)
        pending = None
        if packet is None:
            if transcoder is not None and until == math.inf:
                for encoded in out_audio.encode(None):
                    output.mux(encoded)
            return None
        start = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else until
        if start > until:
            return packet
        if transcoder is None:
            if packet.dts is None:
                continue
            packet.stream = out_audio
            output.mux(packet)
        else:
            for decoded in packet.decode():
                decoded.pts = None
                for encoded in out_audio.encode(decoded):
                    output.mux(encoded)


# ------------------------------------------------------------------------------------------
# The command line: `colorgan colorize film.mp4 -o out/` (cli.cmd_colorize hands videos here)
# ------------------------------------------------------------------------------------------


def split_video_inputs(inputs: list[str], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Videos among ``inputs`` as (file, path relative to what the user named), and the inputs
    left for the photo path: files with a video ending are videos; a folder's videos are
    taken (its output folder excepted) and the folder stays for its photos if it has any."""
    from .images import find_images

    out_real = real_path(out_dir)
    videos: list[tuple[Path, Path]] = []
    rest: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [f for f in find_videos(path) if not real_path(f).is_relative_to(out_real)]
            videos.extend((file, file.relative_to(path)) for file in found)
            if not found or any(not real_path(f).is_relative_to(out_real) for f in find_images(path)):
                rest.append(item)
        elif is_video_path(path):
            videos.append((path, Path(path.name)))
        else:
            rest.append(item)
    return videos, rest


def run_cli(args: Any, videos: list[tuple[Path, Path]]) -> int:
    """Colorize ``videos`` for ``colorgan colorize``: one line on stderr for each that fails
    (the others go on), a progress bar with frames/s for each; exit status 1 if any failed."""
    import sys

    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .cli import _stop_on_signals
    from .registry import run_generator
    from .pipeline import warn_if_vividness_ignored

    out_dir = Path(args.output_dir)
    if not 0.0 <= args.stability <= 1.0:
        raise ColorGANError(f"--stability must be in [0, 1], got {args.stability}")
    try:
        model = video_generator(run_generator(args.model))
    except (ColorGANError, OSError, ValueError) as error:
        logger.error("cannot load model %s: %s", args.model or DEFAULT_VIDEO_MODEL, error)
        return 1
    warn_if_vividness_ignored(model, args.vividness, args.model or DEFAULT_VIDEO_MODEL)
    inputs = {real_path(file) for file, _ in videos}
    taken: set[str] = set()
    done = failed = skipped = 0
    # Warnings (a damaged packet skipped, an odd size padded) print above the progress bar, not into it.
    with _stop_on_signals(), logging_redirect_tqdm():  # SIGTERM and SIGHUP as Ctrl-C: the file being written is removed
        done, failed, skipped = _run_jobs(args, videos, model, out_dir, inputs, taken)
    summary = f"colorized {done} of {len(videos)} video(s) into {out_dir}"
    if skipped:
        summary += f"; {skipped} skipped (already there)"
    if failed:
        summary += f"; {failed} failed"
    tqdm.write(summary, file=sys.stderr)
    return 1 if failed else 0


def _run_jobs(args: Any, videos: list[tuple[Path, Path]], model: Any, out_dir: Path, inputs: set[Path],
              taken: set[str]) -> tuple[int, int, int]:
    import sys

    from tqdm.auto import tqdm

    from .cli import OUTPUT_SUFFIX, _remove_stale_tmp

    done = failed = skipped = 0
    for file, relative in videos:
        target = out_dir / relative.parent / f"{relative.stem}{OUTPUT_SUFFIX}{output_suffix(relative)}"
        if str(target).lower() in taken:
            target = target.with_name(f"{relative.stem}_{relative.suffix.lstrip('.')}{OUTPUT_SUFFIX}{output_suffix(relative)}")
        taken.add(str(target).lower())
        try:
            if real_path(target) in inputs:
                raise ColorGANError(f"{file}: output {target} would overwrite an input; choose another -o")
            if target.exists():
                if args.skip_existing:
                    skipped += 1
                    continue
                if not args.overwrite:
                    raise ColorGANError(f"{file}: output {target} exists (pass --skip-existing to leave it, --overwrite to replace it)")
            _remove_stale_tmp(target)
            result = colorize_video(file, target, model, size=args.video_size, stability=args.stability,
                                    saturation=args.saturation, vividness=args.vividness, progress=not args.quiet)
            done += 1
            tqdm.write(f"{file} -> {target}: {result.frames} frames, {result.width}x{result.height}, "
                       f"{float(result.fps):g} frames/s, {result.seconds:.2f} s{', sound kept' if result.audio else ''}; "
                       f"colorized at {result.frames_per_second:.1f} frames/s"
                       + (f"; {result.damaged_packets} damaged packet(s) skipped" if result.damaged_packets else ""),
                       file=sys.stderr)
        except KeyboardInterrupt:
            raise
        except (ColorGANError, OSError, ValueError) as error:
            failed += 1
            tqdm.write(f"colorgan: error: {error}", file=sys.stderr)
    return done, failed, skipped

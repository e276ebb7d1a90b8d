"""Test clips with known motion, made from colour photos, and the measures of steady colour.

:func:`render_clip` films a photo (or several, one shot each, joined by hard cuts) with a
virtual camera that pans or zooms, writes it as H.264 with a sine tone as its sound, and
returns a :class:`SyntheticClip` that knows, for every frame, where each of its pixels was
in the frame before: the true colours of every frame are the photo's, and the motion is
known exactly. ``tests/test_video.py`` and ``bench/video.py`` use them.

:func:`flicker` is the measure of the issue: the mean |delta a*b*| between consecutive frames
after motion compensation (the previous frame moved onto the current one), over the pixels
seen in both; a scene cut is not a pair. With the known motion of a synthetic clip
(:meth:`SyntheticClip.motion`) or, for a real clip, the optical flow of its true colours
(:func:`flow_motion`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .video import _av, _cv2

# A pixel moved from the previous frame counts for the flow-aligned measure (real clips)
# when its lightness, moved, is within this many L* units of the current frame's.
FLOW_MATCH_L = 4.0


@dataclass
class Shot:
    """One photo filmed by a moving camera: frame pixel q (continuous, pixel centres at
    i + 0.5) shows the photo's point ``center + scale * (q - frame_centre)``."""

    photo: np.ndarray  # (H, W, 3) uint8 sRGB, as filmed (already reduced if the camera looks at it from afar)
    centers: np.ndarray  # (n, 2) x, y in the photo's continuous coordinates
    scales: np.ndarray  # (n,) photo pixels per frame pixel

    def __len__(self) -> int:
        return len(self.scales)


@dataclass
class Motion:
    """Where each pixel of a frame was in the frame before: ``cv2.remap`` maps, and which pixels were seen."""

    map_x: np.ndarray  # (H, W) float32
    map_y: np.ndarray
    valid: np.ndarray  # (H, W) bool


@dataclass
class SyntheticClip:
    """A clip written by :func:`render_clip`: its file and how every frame was filmed."""

    path: Path
    width: int
    height: int
    fps: Fraction
    shots: list[Shot]
    audio: bool
    cuts: list[int] = field(default_factory=list)  # index of the first frame of each shot after the first

    @property
    def frames(self) -> int:
        return sum(len(shot) for shot in self.shots)

    def _locate(self, index: int) -> tuple[Shot, int]:
        for shot in self.shots:
            if index < len(shot):
                return shot, index
            index -= len(shot)
        raise IndexError(index)

    def truth(self, index: int) -> np.ndarray:
        """Frame ``index`` as rendered, (H, W, 3) uint8: its true colours."""
        shot, i = self._locate(index)
        return _film(shot.photo, shot.centers[i], shot.scales[i], self.width, self.height)

    def motion(self, index: int) -> Motion | None:
        """How frame ``index - 1`` moves onto frame ``index`` (None for the first frame and at a cut)."""
        if index == 0 or index in self.cuts:
            return None
        shot, i = self._locate(index)
        m = np.array([self.width / 2, self.height / 2], dtype=np.float64)
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        q = np.stack([xs + 0.5, ys + 0.5], axis=-1)
        photo_point = shot.centers[i] + shot.scales[i] * (q - m)
        q_before = (photo_point - shot.centers[i - 1]) / shot.scales[i - 1] + m
        map_x, map_y = (q_before[..., 0] - 0.5).astype(np.float32), (q_before[..., 1] - 0.5).astype(np.float32)
        valid = (map_x >= 0) & (map_x <= self.width - 1) & (map_y >= 0) & (map_y <= self.height - 1)
        return Motion(map_x, map_y, valid)


def _film(photo: np.ndarray, center: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    cv2 = _cv2()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    map_x = (center[0] + scale * (xs + 0.5 - width / 2) - 0.5).astype(np.float32)
    map_y = (center[1] + scale * (ys + 0.5 - height / 2) - 0.5).astype(np.float32)
    return cv2.remap(photo, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _load_photo(photo: str | os.PathLike | np.ndarray) -> np.ndarray:
    if isinstance(photo, np.ndarray):
        return np.ascontiguousarray(photo[..., :3].astype(np.uint8))
    from PIL import Image, ImageOps

    with Image.open(photo) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def make_shot(photo: str | os.PathLike | np.ndarray, motion: str, frames: int, width: int, height: int,
              view: float = 0.8, travel: float = 0.25) -> Shot:
    """A shot of ``frames`` frames filming ``photo`` with a camera that ``motion``\\ s:

    - ``"pan"``: the camera looks at ``view`` of the photo's height and slides left to right
      (or top to bottom for a tall photo) across it;
    - ``"zoom"``: the camera moves in on the photo's centre, from ``view`` of its height to
      ``view * (1 - travel)``;
    - ``"still"``: it does not move.

    A photo larger than the frames need is reduced (area average) first, so no frame is aliased.
    """
    cv2 = _cv2()
    pixels = _load_photo(photo)
    ph, pw = pixels.shape[:2]
    fit = min(ph / height, pw / width)  # photo pixels per frame pixel when the frame just fits in the photo
    scale = view * fit
    if scale > 1.0:
        reduce = 1.0 / scale
        pixels = cv2.resize(pixels, (max(1, round(pw * reduce)), max(1, round(ph * reduce))), interpolation=cv2.INTER_AREA)
        ph, pw = pixels.shape[:2]
        scale = view * min(ph / height, pw / width)
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    middle = np.array([pw / 2, ph / 2])
    if motion == "pan":
        scales = np.full(frames, scale)
        room = np.array([pw - scale * width, ph - scale * height]) / 2 - 1.0
        axis = 0 if room[0] >= room[1] else 1
        centers = np.repeat(middle[None], frames, axis=0)
        centers[:, axis] += (2 * t - 1) * max(room[axis], 0.0)
    elif motion == "zoom":
        scales = scale * (1 - travel * t)
        centers = np.repeat(middle[None], frames, axis=0)
    elif motion == "still":
        scales = np.full(frames, scale)
        centers = np.repeat(middle[None], frames, axis=0)
    else:
        raise ValueError(f"motion must be pan, zoom or still, got {motion!r}")
    return Shot(pixels, centers, scales)


def render_clip(out_path: str | os.PathLike, shots: Sequence[tuple[str | os.PathLike | np.ndarray, str, int]], *,
                width: int = 640, height: int = 360, fps: int = 24, audio: bool = True, crf: int = 18,
                view: float = 0.8) -> SyntheticClip:
    """Write a clip of ``shots`` (photo, ``"pan"``/``"zoom"``/``"still"``, frames), one after
    the other with hard cuts, as H.264 yuv420p MP4 at ``fps``, with a 440 Hz tone in AAC when
    ``audio``; returns what it knows about every frame."""
    av = _av()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    made = [make_shot(photo, motion, n, width, height, view=view) for photo, motion, n in shots]
    clip = SyntheticClip(out_path, width, height, Fraction(fps), made, audio)
    start = 0
    for shot in made[:-1]:
        start += len(shot)
        clip.cuts.append(start)
    with av.open(str(out_path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None
        if audio:
            sound = output.add_stream("aac", rate=48000)
            sound.layout = "mono"
        for index in range(clip.frames):
            frame = av.VideoFrame.from_ndarray(clip.truth(index), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                output.mux(packet)
        for packet in video.encode(None):
            output.mux(packet)
        if sound is not None:
            total = round(clip.frames / fps * 48000)
            for begin in range(0, total, 1024):
                n = min(1024, total - begin)
                tone = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(begin, begin + n) / 48000))).astype(np.float32)
                samples = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
                samples.sample_rate, samples.pts, samples.time_base = 48000, begin, Fraction(1, 48000)
                for packet in sound.encode(samples):
                    output.mux(packet)
            for packet in sound.encode(None):
                output.mux(packet)
    return clip


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video as (H, W, 3) uint8 RGB, one at a time."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) float32 CIE Lab (D65), by OpenCV: within 0.5 of
    :func:`colorgan_hf.color.rgb_to_lab` and several times faster."""
    return _cv2().cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), _cv2().COLOR_RGB2Lab)


def flow_motion(before_rgb: np.ndarray, now_rgb: np.ndarray) -> Motion:
    """How ``before`` moves onto ``now``, from optical flow (DIS, medium preset) on their
    lightness; pixels whose moved lightness differs by more than :data:`FLOW_MATCH_L` (occluded,
    uncovered) and pixels that come from outside the frame are not valid."""
    cv2 = _cv2()
    l_before, l_now = lab_of(before_rgb)[..., 0], lab_of(now_rgb)[..., 0]
    gray_before = np.clip(l_before * 2.55 + 0.5, 0, 255).astype(np.uint8)
    gray_now = np.clip(l_now * 2.55 + 0.5, 0, 255).astype(np.uint8)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray_now, gray_before, None)
    height, width = gray_now.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    moved = cv2.remap(l_before, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Motion(map_x, map_y, inside & (np.abs(moved - l_now) <= FLOW_MATCH_L))


def frame_change(ab_before: np.ndarray, ab_now: np.ndarray, motion: Motion) -> float:
    """Mean |delta a*b*| (Euclidean, Lab units) between ``ab_now`` and ``ab_before`` moved by
    ``motion``, over the valid pixels (NaN when there are none)."""
    cv2 = _cv2()
    moved = cv2.remap(np.ascontiguousarray(ab_before, dtype=np.float32), motion.map_x, motion.map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    if not motion.valid.any():
        return math.nan
    return float(np.linalg.norm(ab_now - moved, axis=-1)[motion.valid].mean())


def flicker(ab_frames: Iterable[np.ndarray], motions: Iterable[Motion | None]) -> float:
    """The mean over consecutive pairs of :func:`frame_change`; ``motions[i]`` moves frame
    i - 1 onto frame i (None: the first frame, or a cut: no pair)."""
    changes, before = [], None
    for ab, motion in zip(ab_frames, motions):
        if before is not None and motion is not None:
            value = frame_change(before, ab, motion)
            if not math.isnan(value):
                changes.append(value)
        before = ab
    return float(np.mean(changes)) if changes else math.nan

"""Video (issue 18): colorize_video end to end on tiny clips made here from tests/data photos
with known motion, the stabiliser, scene cuts, sound, odd sizes, errors, the CLI and the demo's
video function."""

from __future__ import annotations

import importlib.util
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from colorgan_hf import colorize  # noqa: E402
from colorgan_hf.video import (  # noqa: E402
    AVERAGE_PASSES,
    ChromaStabilizer,
    VideoLoadError,
    colorize_video,
    probe_video,
    split_video_inputs,
)
from colorgan_hf.video_clips import flicker, lab_of, read_frames, render_clip  # noqa: E402

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
W, H = 160, 96
SIZE = 64  # working size: the tests check the plumbing, bench/video.py the figures at 640x360


@pytest.fixture(scope="module")
def model():
    from colorgan_hf import load_default

    return load_default("vivid")  # what videos use unless told


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    pan = render_clip(folder / "pan.mp4", [(DATA / "bsds_12003.jpg", "pan", 16)], width=W, height=H)
    cut = render_clip(folder / "cut.mp4", [(DATA / "bsds_35070.jpg", "pan", 8), (DATA / "sea_10016.jpg", "zoom", 8)],
                      width=W, height=H)
    return {"pan": pan, "cut": cut}


def ab_frames(path: Path) -> list[np.ndarray]:
    return [lab_of(frame)[..., 1:] for frame in read_frames(path)]


def test_output_keeps_size_rate_duration_and_sound(clips, model, tmp_path):
    clip = clips["pan"]
    out = tmp_path / "out" / "pan_color.mp4"
    result = colorize_video(clip.path, out, model, size=SIZE)
    assert result.path == out and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # the temporary file was renamed
    given, made = probe_video(clip.path), probe_video(out)
    assert (made.width, made.height, made.fps, made.frames) == (given.width, given.height, given.fps, given.frames) == (W, H, 24, 16)
    assert made.seconds == pytest.approx(given.seconds, abs=0.05) and result.frames == 16
    assert made.audio and result.audio
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        sound = container.streams.audio[0]
        assert sound.codec_context.name == "aac" and sound.duration * sound.time_base == pytest.approx(given.seconds, abs=0.1)
    first = next(read_frames(out))
    assert np.linalg.norm(lab_of(first)[..., 1:], axis=-1).mean() > 1.0  # it has colour


def test_frame_by_frame_is_the_photo_pipeline_on_each_frame(clips, model, tmp_path):
    """stability 0: each frame is what colorize() gives for it (up to the H.264 encoding)."""
    clip = clips["pan"]
    out = colorize_video(clip.path, tmp_path / "fbf.mp4", model, size=SIZE, stability=0.0).path
    for index, (source, made) in enumerate(zip(read_frames(clip.path), read_frames(out))):
        if index % 5:
            continue
        expected = np.asarray(colorize(source, model, size=SIZE))
        assert np.abs(made.astype(int) - expected.astype(int)).mean() < 4.0  # H.264 on a 160x96 frame
        assert np.linalg.norm(lab_of(made)[..., 1:] - lab_of(expected)[..., 1:], axis=-1).mean() < 3.0


def test_stabilised_colours_flicker_less_than_frame_by_frame(clips, model, tmp_path):
    clip = clips["pan"]
    motions = [clip.motion(i) for i in range(clip.frames)]
    fbf = flicker(ab_frames(colorize_video(clip.path, tmp_path / "a.mp4", model, size=SIZE, stability=0.0).path), motions)
    steady = flicker(ab_frames(colorize_video(clip.path, tmp_path / "b.mp4", model, size=SIZE).path), motions)
    assert steady < 0.7 * fbf, (steady, fbf)


def test_a_scene_cut_starts_afresh(clips, tmp_path):
    from colorgan_hf import load_default

    # The narrow model: on this tiny zoom its guesses agree from frame to frame, so frame by frame
    # is a fair reference for the new shot's own colours (vivid's steady ones sit 8 units from each guess there).
    model = load_default("fast")
    clip = clips["cut"]
    assert clip.cuts == [8]
    steady = colorize_video(clip.path, tmp_path / "s.mp4", model, size=SIZE)
    assert steady.cuts == [8]
    fbf = colorize_video(clip.path, tmp_path / "f.mp4", model, size=SIZE, stability=0.0)
    steady_ab, fbf_ab = list(ab_frames(steady.path)), list(ab_frames(fbf.path))
    gap = [float(np.linalg.norm(a - b, axis=-1).mean()) for a, b in zip(steady_ab, fbf_ab)]
    jump = float(np.linalg.norm(steady_ab[8] - steady_ab[7], axis=-1).mean())
    # The first frame of the new shot has the new shot's own colours (as far from frame by frame
    # as the rest of that shot is), not a ghost of the old one's.
    assert gap[8] <= max(gap[9:]), gap
    assert gap[8] < 0.5 * jump, (gap, jump)


def test_stabilizer_strength_zero_is_the_identity_and_bounds_are_checked():
    l_small, ab = torch.rand(1, 16, 32) * 100, torch.randn(2, 16, 32) * 20
    stabilizer = ChromaStabilizer(0.0)
    assert stabilizer.push(l_small, ab)[0] is ab and stabilizer.push(l_small, ab)[0] is ab and stabilizer.flush() == []
    for strength in (-0.1, 1.01):
        with pytest.raises(ValueError):
            ChromaStabilizer(strength)
    with pytest.raises(ValueError):
        ChromaStabilizer(1.0, segment_frames=8, overlap=4)
    steady = ChromaStabilizer(0.8)
    assert steady.push(l_small, ab) == []  # held until its stretch is complete
    assert steady.push(l_small, ab + 10) == []  # the same picture again, the network's guess shifted
    first, second = steady.flush()
    # Each pass, each frame takes the other's value at weight 0.8 against its own 1: the two stay
    # either side of the middle (5), and their gap shrinks by 0.2 / 1.8 a pass.
    gap = 10 * (0.2 / 1.8) ** AVERAGE_PASSES
    assert float((first - ab).mean()) == pytest.approx(5 - gap / 2, abs=0.2)
    assert float((second - first).mean()) == pytest.approx(gap, abs=0.05)


def test_stabilizer_keeps_the_guesses_spread_of_colours_and_the_average_tint():
    """A still picture whose guessed colours differ in detail from frame to frame (two
    patterns of the same spread, and a tint that alternates): the plain average is flatter
    than either guess; the stabiliser's output has the guesses' spread around each frame's
    mean, the average's pattern, and the average's tint."""
    torch.manual_seed(1)
    picture = torch.rand(1, 24, 32) * 100
    patterns = [torch.randn(2, 24, 32) * 10, torch.randn(2, 24, 32) * 10]
    tints = [torch.tensor([8.0, -4.0]), torch.tensor([-2.0, 6.0])]
    stabilizer = ChromaStabilizer(1.0)
    guesses = [patterns[t % 2] + tints[t % 2][:, None, None] for t in range(10)]
    for guess in guesses:
        assert stabilizer.push(picture, guess) == []
    steady = stabilizer.flush()

    def spread(ab: torch.Tensor) -> float:
        return float((ab - ab.mean(dim=(1, 2), keepdim=True)).square().sum(0).mean().sqrt())

    average = (patterns[0] + patterns[1]) / 2
    guessed = sum(spread(g) for g in guesses) / len(guesses)
    assert spread(average) < 0.8 * guessed  # what a plain average would give
    pattern = average - average.mean(dim=(1, 2), keepdim=True)
    for frame in steady:
        assert spread(frame) == pytest.approx(guessed, rel=0.02)
        centred = frame - frame.mean(dim=(1, 2), keepdim=True)
        assert float(F.cosine_similarity(centred.flatten(), pattern.flatten(), dim=0)) > 0.99
        assert frame.mean(dim=(1, 2)).tolist() == pytest.approx([3.0, 1.0], abs=0.2)  # the tints' average


def test_stabilizer_hands_frames_on_in_order_stretch_by_stretch_and_carries_a_shot_across_stretches():
    """A still picture whose predicted colours drift: every frame comes back once, in order,
    stretch by stretch; the first stretch holds one colour (its average), and the later
    stretches of the same shot carry its history on (the forward sums run across stretches)
    instead of starting again from their own frames: the colour stays near the first
    stretch's, with no jump where two stretches meet; a cut ends the shot."""
    torch.manual_seed(0)
    picture = torch.rand(1, 24, 32) * 100
    stabilizer = ChromaStabilizer(1.0, segment_frames=24, overlap=4)
    back: list[torch.Tensor] = []
    counts = []
    for t in range(60):
        back += stabilizer.push(picture, torch.full((2, 24, 32), float(t)))
        counts.append(len(back))
    assert counts[22] == 0 and counts[23] == 20 and counts[42] == 20 and counts[43] == 40
    other = torch.rand(1, 24, 32) * 100  # a cut to another picture
    back += stabilizer.push(other, torch.full((2, 24, 32), -50.0))
    assert len(back) == 60 and stabilizer.cuts == [60], "the cut hands on every frame of the old shot"
    back += stabilizer.flush()
    assert len(back) == 61 and float(back[-1].mean()) == pytest.approx(-50.0), "the new shot starts afresh"
    means = [float(frame.mean()) for frame in back[:60]]
    assert means[0] == pytest.approx(11.5, abs=0.5) and means[19] == pytest.approx(11.5, abs=0.5), "the first stretch's average"
    # Frames 20-43 alone average 31.5: the second stretch stays nearer the first's colour.
    assert 11.5 < means[30] < 21.5, means
    jumps = [b - a for a, b in zip(means, means[1:])]
    assert min(jumps) > -0.05 and max(jumps) < 1.0, jumps


def write_odd_mkv(path: Path, frames: int = 6) -> Path:
    """A 161x97 FFV1 clip in Matroska with PCM sound: odd sides, and sound MP4 cannot carry as it is."""
    with av.open(str(path), "w", format="matroska") as output:
        video = output.add_stream("ffv1", rate=12)
        video.width, video.height, video.pix_fmt = 161, 97, "yuv444p"
        sound = output.add_stream("pcm_s16le", rate=16000)
        sound.layout = "mono"
        rng = np.random.default_rng(0)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (97, 161, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 12)
            for packet in video.encode(frame):
                output.mux(packet)
        for packet in video.encode(None):
            output.mux(packet)
        samples = (np.sin(np.arange(16000 * frames // 12) / 5) * 8000).astype(np.int16)[None]
        for start in range(0, samples.shape[1], 1000):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1000]), format="s16", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 16000, start, Fraction(1, 16000)
            for packet in sound.encode(chunk):
                output.mux(packet)
        for packet in sound.encode(None):
            output.mux(packet)
    return path


def test_odd_sizes_are_padded_and_unmuxable_sound_is_reencoded(model, tmp_path):
    source = write_odd_mkv(tmp_path / "odd.mkv")
    result = colorize_video(source, tmp_path / "odd_color.mp4", model, size=SIZE)
    made = probe_video(result.path)
    assert (made.width, made.height) == (162, 98) and made.frames == 6 and made.audio
    with av.open(str(result.path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    kept = colorize_video(source, tmp_path / "odd_color.mkv", model, size=SIZE)  # Matroska takes PCM as it is
    with av.open(str(kept.path)) as container:
        assert container.format.name == "matroska,webm" and container.streams.audio[0].codec_context.name == "pcm_s16le"


def write_clip(path: Path, images: list[np.ndarray], *, pix_fmt: str = "yuv420p", options: dict[str, str] | None = None,
               times: list[int] | None = None, rotation: int | None = None, pixel_aspect: Fraction | None = None,
               damage: frozenset[int] = frozenset()) -> Path:
    """``images`` as an H.264 clip at 12 frames/s. ``times``: each frame's pts in 1/12 s (default
    0, 1, 2, ...); ``rotation``: a display matrix that tells players to turn the frames that many
    degrees counter-clockwise; ``pixel_aspect``: the sample aspect ratio; ``damage``: indices of
    packets written damaged (see :func:`damaged`)."""
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = images[0].shape[1], images[0].shape[0], pix_fmt
        video.options = options or {}
        if rotation is not None:
            video.set_display_rotation(rotation)
        if pixel_aspect is not None:
            video.codec_context.sample_aspect_ratio = pixel_aspect
        packets = []
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = (i if times is None else times[i]), Fraction(1, 12)
            packets += video.encode(frame)
        packets += video.encode(None)
        for j, packet in enumerate(packets):
            output.mux(damaged(packet, video) if j in damage else packet)
    return path


def write_plain(path: Path, images: list[np.ndarray]) -> Path:
    """x264 lossless, 4:4:4."""
    return write_clip(path, images, pix_fmt="yuv444p", options={"crf": "0"})


def write_sideways(path: Path, upright: list[np.ndarray], rotation: int = 90, damage_first: bool = False) -> Path:
    """``upright`` stored as a phone stores a portrait video: turned by ``rotation`` degrees
    clockwise, with a display matrix that tells players to turn it back by as much
    counter-clockwise (x264 lossless, 4:4:4, every frame a keyframe). ``damage_first``: the
    first packet's payload zeroed, so the first frame does not decode."""
    turns = (rotation // 90) % 4
    return write_clip(path, [np.rot90(image, -turns) for image in upright], pix_fmt="yuv444p", options={"crf": "0", "g": "1"},
                      rotation=rotation, damage=frozenset({0}) if damage_first else frozenset())


def damaged(packet, stream):
    """``packet`` with its NAL length kept and its payload zeroed: the decoder refuses it."""
    data = bytes(packet)
    broken = av.Packet(data[:4] + bytes(len(data) - 4))
    broken.pts, broken.dts, broken.time_base, broken.stream = packet.pts, packet.dts, packet.time_base, stream
    return broken


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_video_stored_on_its_side_is_colorized_and_written_upright(clips, model, tmp_path, rotation):
    upright = list(read_frames(clips["pan"].path))[:6]
    source = write_sideways(tmp_path / "phone.mp4", upright, rotation)
    turns = (rotation // 90) % 4
    given = probe_video(source)
    assert (given.width, given.height, given.rotation) == (W, H, turns * 90)
    assert given.stored_size == ((H, W) if turns % 2 else (W, H))
    result = colorize_video(source, tmp_path / "phone_color.mp4", model, size=SIZE, stability=0.0)
    made = probe_video(result.path)
    assert (made.width, made.height, made.rotation) == (W, H, 0) and (result.width, result.height) == (W, H)
    with av.open(str(result.path)) as container:
        assert next(container.decode(video=0)).rotation == 0  # turned in the pixels, no matrix left to obey
    out = [lab_of(frame) for frame in read_frames(result.path)]
    truth = [lab_of(frame) for frame in upright]
    assert all(np.abs(o[..., 0] - t[..., 0]).mean() < 2.0 for o, t in zip(out, truth))  # the photo's lightness, upright
    # The network saw the frames upright: the same colours as for the upright clip itself,
    # not those it gives the frames as stored.
    plain = [lab_of(frame)[..., 1:] for frame in read_frames(colorize_video(
        write_plain(tmp_path / "plain.mp4", upright), tmp_path / "plain_color.mp4", model, size=SIZE, stability=0.0).path)]
    as_stored = [np.rot90(lab_of(frame), turns)[..., 1:] for frame in read_frames(colorize_video(
        write_plain(tmp_path / "stored.mp4", [np.rot90(image, -turns) for image in upright]), tmp_path / "stored_color.mp4",
        model, size=SIZE, stability=0.0).path)]
    near = np.mean([np.abs(o[..., 1:] - p).mean() for o, p in zip(out, plain)])
    far = np.mean([np.abs(o[..., 1:] - q).mean() for o, q in zip(out, as_stored)])
    assert near < 1.0 and near < far / 2, (near, far)


def test_the_rotation_is_found_past_a_damaged_first_frame(clips, model, tmp_path):
    upright = list(read_frames(clips["pan"].path))[:6]
    source = write_sideways(tmp_path / "phone.mp4", upright, 90, damage_first=True)
    assert probe_video(source).rotation == 90
    result = colorize_video(source, tmp_path / "phone_color.mp4", model, size=SIZE, stability=0.0)
    assert (result.frames, result.width, result.height) == (5, W, H)


def test_anamorphic_pixels_and_a_late_start_are_kept(clips, model, tmp_path, monkeypatch):
    """A DVD's pixels are not square, and an MPEG stream rarely starts at 0: the output keeps
    the pixel aspect (the picture is not squashed), the start (the sound stays in sync) and
    reports its own duration; the network sees the picture in its displayed proportions."""
    upright = list(read_frames(clips["pan"].path))[:6]
    source = write_clip(tmp_path / "dvd.mp4", upright, pixel_aspect=Fraction(4, 3),
                        times=[12 + i for i in range(len(upright))])  # starts at 1 s
    assert probe_video(source).pixel_aspect == Fraction(4, 3)
    seen = []
    predict = model.predict_ab
    monkeypatch.setattr(model, "predict_ab", lambda l_small, *a: seen.append(l_small.shape[-2:]) or predict(l_small, *a))
    result = colorize_video(source, tmp_path / "dvd_color.mp4", model, size=SIZE)
    assert result.seconds == pytest.approx(0.5) and result.frames == 6
    made = probe_video(result.path)
    assert (made.width, made.height, made.pixel_aspect) == (W, H, Fraction(4, 3))
    with av.open(str(result.path)) as container:
        first = next(container.decode(video=0))
        assert float(first.pts * first.time_base) == pytest.approx(1.0)
    h, w = seen[0]
    assert w / h == pytest.approx(W * 4 / 3 / H, rel=0.1)


def write_damaged(path: Path, images: list[np.ndarray]) -> Path:
    """``images`` as an H.264 clip whose 6th packet is damaged (see :func:`damaged`)."""
    return write_clip(path, images, damage=frozenset({5}))


def test_a_damaged_packet_is_skipped_with_a_warning_and_the_rest_colorized(clips, model, tmp_path, caplog, capsys):
    """Old files have damaged stretches: a packet that does not decode costs its frame, not the video."""
    from colorgan_hf.cli import main

    source = write_damaged(tmp_path / "damaged.mkv", list(read_frames(clips["pan"].path))[:12])
    with caplog.at_level("WARNING", logger="colorgan_hf.video"):
        result = colorize_video(source, tmp_path / "damaged_color.mp4", model, size=SIZE)
    assert result.frames == 11 and probe_video(result.path).frames == 11 and result.damaged_packets == 1
    assert "damaged.mkv: 1 damaged packet(s) could not be decoded and were skipped" in caplog.text
    assert main(["-q", "colorize", str(source), "-o", str(tmp_path / "out"), "--video-size", str(SIZE)]) == 0
    said = capsys.readouterr().err
    assert ": 11 frames, " in said and "; 1 damaged packet(s) skipped" in said  # the CLI's line for the video


def comb(image: np.ndarray) -> float:
    """Mean |row - mean of the rows above and below| of the lightness: high where two fields of different moments are woven."""
    y = lab_of(image)[..., 0]
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]


def test_interlaced_video_is_deinterlaced_before_it_is_colorized(model, tmp_path):
    """TV and VHS transfers are interlaced: each frame weaves two fields half a frame apart, so
    whatever moves shows combs. They are made progressive (bwdif) at the same frame rate."""
    from PIL import Image

    photo = np.asarray(Image.open(DATA / "bsds_12003.jpg").convert("RGB"))
    woven = []
    for t in range(8):  # a pan of 4 pixels a frame: the odd rows are the field 2 pixels later
        frame = photo[:H, 4 * t : 4 * t + W].copy()
        frame[1::2] = photo[:H, 4 * t + 2 : 4 * t + 2 + W][1::2]
        woven.append(frame)
    source = write_clip(tmp_path / "tv.mp4", woven,
                        options={"flags": "+ildct+ilme"},  # coded as interlaced, so decoded frames say so
                        times=[12 + t + t // 3 for t in range(8)])  # from 1 s on, a frame dropped now and then
    assert probe_video(source).interlaced
    result = colorize_video(source, tmp_path / "tv_color.mp4", model, size=SIZE)
    assert result.frames == 8 and frame_times(result.path) == pytest.approx(frame_times(source))  # the timing kept
    given, made = list(read_frames(source)), list(read_frames(result.path))
    assert np.mean([comb(f) for f in made]) < 0.5 * np.mean([comb(f) for f in given])
    with av.open(str(result.path)) as container:
        assert not any(frame.interlaced_frame for frame in container.decode(video=0))
    progressive = write_plain(tmp_path / "progressive.mp4", [np.ascontiguousarray(photo[:H, 4 * t : 4 * t + W]) for t in range(8)])
    assert not probe_video(progressive).interlaced  # left as it is


def test_deinterlacing_scales_a_frame_whose_size_changes_mid_stream(tmp_path):
    """A filter graph keeps the size it was set up with: a later, larger frame is scaled to it, not cropped."""
    from colorgan_hf.video import _decode_frames, _deinterlaced

    def part(width: int, height: int) -> bytes:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base, encoder.framerate = Fraction(1, 12), Fraction(12)
        encoder.options = {"flags": "+ildct+ilme", "crf": "0"}
        ramp = np.tile(np.linspace(0, 255, width)[None, :, None], (height, 1, 3)).astype(np.uint8)  # dark left, bright right
        data = b""
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(ramp, format="rgb24")
            frame.pts = i
            data += b"".join(bytes(packet) for packet in encoder.encode(frame))
        return data + b"".join(bytes(packet) for packet in encoder.encode(None))

    raw = tmp_path / "resized.h264"
    raw.write_bytes(part(64, 48) + part(128, 64))
    with av.open(str(raw)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in _deinterlaced(av, _decode_frames(av, container, stream, raw), raw)]
    assert len(frames) == 6 and all(f.shape == (48, 64) for f in frames)
    assert all(f[10, -1] > 240 for f in frames)  # the whole ramp, to its bright end (a crop would stop half way)


def test_not_a_video_is_a_clear_error_and_nothing_is_left(model, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are not frames\n" * 50)
    with pytest.raises(VideoLoadError, match=r"notes\.mp4: not a video"):
        colorize_video(fake, tmp_path / "out.mp4", model)
    with pytest.raises(VideoLoadError, match="no such file"):
        colorize_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", model)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoLoadError, match=r"empty\.mp4: empty file \(0 bytes\)$"):  # review s4, 12d: as a photo's
        colorize_video(empty, tmp_path / "out.mp4", model)
    empty.unlink()
    sound_only = tmp_path / "sound.m4a"
    with av.open(str(sound_only), "w", format="mp4") as output:
        stream = output.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    with pytest.raises(VideoLoadError, match="no video stream"):
        colorize_video(sound_only, tmp_path / "out.mp4", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4", "sound.m4a"]


def test_limits_and_an_error_mid_way_leave_no_file(clips, model, tmp_path):
    with pytest.raises(VideoLoadError, match="over the limit"):
        colorize_video(clips["pan"].path, tmp_path / "long.mp4", model, size=SIZE, max_seconds=0.3)

    def fail(written: int) -> None:
        if written == 5:
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        colorize_video(clips["pan"].path, tmp_path / "broken.mp4", model, size=SIZE, on_frame=fail)
    assert list(tmp_path.iterdir()) == []


def test_cli_colorizes_videos_and_photos_of_a_folder(clips, tmp_path, capsys):
    from colorgan_hf.cli import main

    folder = tmp_path / "films"
    folder.mkdir()
    (folder / "reel.mp4").write_bytes(clips["pan"].path.read_bytes())
    (folder / "still.jpg").write_bytes((DATA / "cat.jpg").read_bytes())
    out = tmp_path / "out"
    assert main(["-q", "colorize", str(folder), "-o", str(out), "--video-size", str(SIZE), "--size", "64"]) == 0
    assert probe_video(out / "reel_color.mp4").frames == 16
    assert (out / "still_color.jpg").is_file()
    assert "colorized 1 of 1 video(s)" in capsys.readouterr().err
    # Run again: the video is there already.
    assert main(["-q", "colorize", str(folder / "reel.mp4"), "-o", str(out), "--skip-existing"]) == 0
    assert main(["-q", "colorize", str(folder / "reel.mp4"), "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_cli_reports_a_file_that_is_not_a_video(tmp_path, capsys):
    from colorgan_hf.cli import main

    fake = tmp_path / "film.avi"
    fake.write_bytes(b"\0" * 4096)
    assert main(["-q", "colorize", str(fake), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "film.avi: not a video" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "film_color.mp4").exists()


def test_split_video_inputs_keeps_photo_folders_and_skips_the_output(tmp_path):
    folder = tmp_path / "in"
    (folder / "out").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(b"x")
    (folder / "out" / "a_color.mp4").write_bytes(b"x")
    only_videos, rest = split_video_inputs([str(folder)], folder / "out")
    assert only_videos == [(folder / "a.mp4", Path("a.mp4"))] and rest == []
    (folder / "b.png").write_bytes(b"x")
    assert split_video_inputs([str(folder), "c.jpg", "d.MOV"], folder / "out")[1] == [str(folder), "c.jpg"]


def load_app(monkeypatch, cache: Path):
    pytest.importorskip("gradio")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    spec = importlib.util.spec_from_file_location("colorgan_space_app_video", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, app)
    spec.loader.exec_module(app)
    return app


def test_demo_video_function_colorizes_an_upload_and_refuses_anything_else(clips, model, tmp_path, monkeypatch):
    import gradio as gr

    cache = tmp_path / "cache"
    cache.mkdir()
    app = load_app(monkeypatch, cache)
    storage = app.Storage(cache, 50 * app.MB, 600)
    run = app.make_video_handler({app.DEFAULT_LABEL: model}, storage)
    upload = cache / "upload1" / "reel.mp4"
    upload.parent.mkdir()
    upload.write_bytes(clips["cut"].path.read_bytes())
    video = app.UploadedVideo().preprocess(type("Payload", (), {"path": str(upload)})())
    path, line = run(video, 0.8, 1.0, app.DEFAULT_LABEL)
    assert Path(path).is_relative_to(cache) and probe_video(path).frames == 16 and probe_video(path).audio
    assert "16 frames of 160x96" in line and "sound kept" in line and "scene cuts at frames 8" in line
    old_film = cache / "upload3" / "old.mkv"
    old_film.parent.mkdir()
    write_damaged(old_film, list(read_frames(clips["pan"].path))[:12])
    _, line = run(app.UploadedVideo().preprocess(type("Payload", (), {"path": str(old_film)})()), 0.8, 1.0, app.DEFAULT_LABEL)
    assert "Colorized 11 frames" in line and "1 damaged packet(s) of the clip could not be decoded" in line
    with pytest.raises(gr.Error, match="not uploaded"):
        app.UploadedVideo().preprocess(type("Payload", (), {"path": str(clips["pan"].path)})())
    with pytest.raises(gr.Error, match="Upload a video"):
        run(None, 0.8, 1.0, app.DEFAULT_LABEL)
    monkeypatch.setattr(app, "VIDEO_MAX_SECONDS", 0.4)
    with pytest.raises(gr.Error, match="over the limit of 0.4 s"):
        run(video, 0.8, 1.0, app.DEFAULT_LABEL)
    fake = cache / "upload2" / "notes.mp4"
    fake.parent.mkdir()
    fake.write_text("not a film")
    with pytest.raises(gr.Error, match=r"^.notes\.mp4: not a video"):
        run(str(fake), 0.8, 1.0, app.DEFAULT_LABEL)
    assert str(cache) not in str(pytest.raises(gr.Error, run, str(fake), 0.8, 1.0, app.DEFAULT_LABEL).value)


def test_browser_video_tab_states_the_limit_and_gives_the_clip_back(clips, tmp_path):
    """The Video tab in Debian's Chromium: the limit is in the page, an upload comes back colorized and playable."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("gradio_client")
    from test_space import CHROMIUM_ARGS, start_app

    proc, url, _, log = start_app(tmp_path)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_role("tab", name="Video").click()
            page.get_by_text("at most 20 s").first.wait_for(timeout=10_000)
            page.locator("#video-input input[type=file]").set_input_files(str(clips["cut"].path))
            page.wait_for_timeout(500)
            page.locator("#video-button").click()
            page.locator("#video-info").get_by_text("Colorized 16 frames").wait_for(timeout=60_000)
            page.locator("#video-info").get_by_text("You waited").wait_for(timeout=10_000)
            src = page.locator("#video-result video").get_attribute("src")
            body = page.request.get(src if src.startswith("http") else url + src).body()
            (tmp_path / "back.mp4").write_bytes(body)
            assert probe_video(tmp_path / "back.mp4").frames == 16
            page.screenshot(path=str(tmp_path / "video_tab.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_videos_use_the_vivid_model_unless_told(clips, tmp_path, monkeypatch):
    from colorgan_hf import load_default, pipeline, video

    seen, original = [], pipeline._generator

    def spy(model):
        seen.append(model)
        return original(model)

    monkeypatch.setattr(pipeline, "_generator", spy)
    colorize_video(clips["cut"].path, tmp_path / "a.mp4", size=SIZE)
    assert seen == [video.DEFAULT_VIDEO_MODEL] == ["vivid"]
    # The demo's video tab: the vivid model under the default's label, unless the page was started on another model.
    (tmp_path / "cache").mkdir()
    app = load_app(monkeypatch, tmp_path / "cache")
    default = load_default()
    chosen = app.load_video_models(None, {app.DEFAULT_LABEL: default})
    assert chosen[app.DEFAULT_LABEL].architecture == "unet" and default.architecture == "unet_pair"
    assert chosen[app.DEFAULT_LABEL].net.base_channels == default.net.second.base_channels == 48  # the pair's wider U-Net
    assert app.load_video_models("my/model", {app.DEFAULT_LABEL: default})[app.DEFAULT_LABEL] is default
    # The page offers default, vivid and the paper's reproduction; the video tab has no separate vivid choice (its
    # default already is that network), and keeps the paper's.
    page = app.load_models(None)
    assert list(page) == [app.DEFAULT_LABEL, app.VIVID_LABEL, app.PAPER_LABEL]
    assert page[app.VIVID_LABEL].architecture == "unet" and page[app.VIVID_LABEL].net.base_channels == 48
    assert list(app.load_video_models(None, page)) == [app.DEFAULT_LABEL, app.PAPER_LABEL]
    assert app.load_video_models(None, page)[app.PAPER_LABEL] is page[app.PAPER_LABEL]


def test_colorize_video_leaves_the_callers_model_as_it_was(clips, tmp_path):
    """The video path folds the normalizations and moves the weights to channels-last on a copy
    (place_generator): the model passed in keeps its layers, memory layout, values and mode."""
    from colorgan_hf import load_default

    model = load_default("fast").train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    colorize_video(clips["pan"].path, tmp_path / "a.mp4", model, size=SIZE)
    after = model.state_dict()
    assert model.training and set(after) == set(before)
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert all(p.is_contiguous() for p in model.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("options, message", [
    ({"saturation": float("nan")}, "saturation must be a finite number >= 0, got nan"),
    ({"max_seconds": float("nan")}, "max_seconds must be > 0, got nan"),
    ({"max_frames": float("nan")}, "max_frames must be >= 1, got nan"),
    ({"max_pixels": float("nan")}, "max_pixels must be >= 1, got nan"),
])
def test_non_finite_video_options_are_refused_before_the_video_is_read(tmp_path, model, options, message):
    """Review s4, 1 (the same hole in the video options): a NaN saturation failed mid-way; a NaN limit was no limit."""
    from colorgan_hf import OptionError

    with pytest.raises(OptionError) as info:
        colorize_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", model, **options)
    assert str(info.value) == message


def test_demo_handlers_refuse_a_non_finite_saturation(tmp_path, monkeypatch, tiny_unet, photo_paths, clips):
    """Review s4, 1: the demo's handlers passed a NaN saturation on and raised a bare IndexError."""
    import gradio as gr
    from PIL import Image

    cache = tmp_path / "cache"
    (cache / "upload").mkdir(parents=True)
    app = load_app(monkeypatch, cache)
    storage = app.Storage(cache, 50 * app.MB, 600)
    models = {app.DEFAULT_LABEL: tiny_unet}
    photo = cache / "upload" / "photo.jpg"
    photo.write_bytes(photo_paths[0].read_bytes())
    video = cache / "upload" / "reel.mp4"
    video.write_bytes(clips["pan"].path.read_bytes())
    editor = {"background": np.asarray(Image.open(photo).convert("RGB")), "layers": []}
    calls = {"photo": lambda s: app.make_handler(models, storage)(str(photo), 64, s, app.DEFAULT_LABEL),
             "batch": lambda s: app.make_batch_handler(models, storage)([str(photo)], 64, s, app.DEFAULT_LABEL),
             "hints": lambda s: app.make_hints_handler(models, storage)(editor, 64, s, app.DEFAULT_LABEL),
             "video": lambda s: app.make_video_handler(models, storage)(str(video), 0.8, s, app.DEFAULT_LABEL)}
    for name, call in calls.items():
        for value in (float("nan"), float("inf"), -1.0):
            with pytest.raises(gr.Error, match=r"^.Saturation must be a finite number >= 0, got") as info:
                call(value)
            assert str(value) in str(info.value), (name, info.value)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.parent.name != "upload"], "nothing was written"

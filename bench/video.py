"""Video: steady colours, per-frame quality, scene cuts and throughput, measured.

    runs/quiet.sh python bench/video.py [--json bench/video.json] [--real CLIP.mp4]

Clips are made here (``colorgan_hf.video_clips.render_clip``) from held-out colour photos
(``../shared/data/photos/eval/bsds500_test``) at 640x360, 24 frames/s, with a sine tone as
sound: a pan, a zoom, and a pan cut to a zoom of another photo. Their true colours and the
motion of every pixel are known. Each clip is colorized twice through ``colorize_video``
(decode to encode, the file written): frame by frame (stability 0) and stabilised (the
default stability), and the outputs are decoded and compared with the clip's own colours:

- flicker: mean |delta a*b*| (Lab units) between consecutive frames after motion
  compensation (the known motion; a cut is no pair), for the truth, frame by frame and
  stabilised;
- per-frame quality: CIEDE2000 against the truth and colourfulness (Hasler & Suesstrunk),
  averaged over every 3rd frame (Lab by OpenCV, within 0.5 of the package's kornia Lab);
- a scene cut: the frame the stabiliser started afresh at, and the mean |delta a*b*| between
  the stabilised and the frame-by-frame output at the cut and the 2 frames after it (a ghost
  of the old shot shows here), beside the same figure's median within the shots;
- the measure's floor: the flicker of the truth's colours smoothed to the working size and
  scaled to the stabilised frames' chroma (steady by construction: what the motion
  compensation alone leaves for colours like the output's);
- the flicker again with both runs written lossless (x264 CRF 0), against the truth's frames as
  rendered: H.264 at the default CRF 18 smooths away part of frame by frame's flicker (and adds
  a little noise of its own), so this is what the stabiliser itself takes out;
- throughput: frames per second of the stabilised run, decode to encode;
- memory: peak resident memory of a run on a short and a 4x longer clip, each in its own process.

``--real CLIP`` adds a real colour clip (scaled to 640x360, its sound kept), aligned with
the optical flow of its true colours; the README names the one used (Big Buck Bunny).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorgan_hf.metrics.functional import ciede2000_map, colorfulness  # noqa: E402
from colorgan_hf.registry import load_model  # noqa: E402
from colorgan_hf.video import DEFAULT_STABILITY, DEFAULT_VIDEO_MODEL, DEFAULT_VIDEO_SIZE, colorize_video, probe_video  # noqa: E402
from colorgan_hf.video_clips import flicker, flow_motion, frame_change, lab_of, read_frames, render_clip  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "eval" / "bsds500_test"
# The photos filmed: every 25th of the held-out set in name order (8 of its 200).
EVERY = 25
SHOT_FRAMES = 48
QUALITY_EVERY = 3  # per-frame quality is scored on every 3rd frame (CIEDE2000 at 640x360 is slow)


def make_clips(work: Path, photos: Path, frames: int, width: int, height: int) -> dict:
    p = sorted(photos.glob("*.jpg"))[::EVERY]
    plan = {
        "pan1": [(p[0], "pan", frames)],
        "zoom1": [(p[1], "zoom", frames)],
        "cut": [(p[2], "pan", frames // 2), (p[3], "zoom", frames // 2)],
        "pan2": [(p[4], "pan", frames)],
        "zoom2": [(p[5], "zoom", frames)],
        "cut2": [(p[6], "zoom", frames // 2), (p[7], "pan", frames // 2)],
    }
    return {name: render_clip(work / f"{name}.mp4", shots, width=width, height=height) for name, shots in plan.items()}


def scale_real(source: Path, target: Path, width: int, height: int) -> Path:
    """``source`` scaled to ``width`` x ``height`` (H.264 CRF 18), its audio copied."""
    import av

    with av.open(str(source)) as given, av.open(str(target), "w", format="mp4") as output:
        video_in = given.streams.video[0]
        video = output.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        video.time_base = video.codec_context.time_base = video_in.time_base
        audio_in = given.streams.audio[0] if given.streams.audio else None
        audio = output.add_stream_from_template(audio_in) if audio_in is not None else None
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        for packet in given.demux(*streams):
            if packet.stream.type == "audio":
                if packet.dts is not None:
                    packet.stream = audio
                    output.mux(packet)
                continue
            for frame in packet.decode():
                small = frame.reformat(width=width, height=height, format="yuv420p")
                small.pts, small.time_base = frame.pts, frame.time_base
                for out in video.encode(small):
                    output.mux(out)
        for out in video.encode(None):
            output.mux(out)
    return target


def smoothed(ab: np.ndarray, size: int) -> np.ndarray:
    """``ab`` (H, W, 2) brought down to short side ``size`` (area) and back up (bilinear): about as smooth as
    chroma predicted at that working size."""
    import cv2

    height, width = ab.shape[:2]
    scale = size / min(height, width)
    small = cv2.resize(ab, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def score(truth_frames, fbf_frames, stab_frames, motions, cut_frames: list[int], exact_frames=None, size: int = DEFAULT_VIDEO_SIZE) -> dict:
    """Every figure of one clip, streaming the three decoded videos in lockstep (and the
    frames as rendered, before encoding, when ``exact_frames`` is given).

    Also the measure's floor for the stabilised output: the truth's own colours smoothed to
    the working ``size`` and scaled, pair by pair, to the stabilised frame's mean chroma are
    perfectly steady by construction, so their flicker is what the motion compensation alone
    leaves for colours as smooth and as colourful as the output's."""
    sums = {"truth": [], "frame_by_frame": [], "stabilised": []}
    if exact_frames is not None:
        sums["truth_exact"] = []
    exact_frames = exact_frames if exact_frames is not None else iter(lambda: None, 0)
    quality = {"frame_by_frame": {"ciede2000": [], "colourfulness": []}, "stabilised": {"ciede2000": [], "colourfulness": []},
               "truth": {"colourfulness": []}}
    gap = []  # mean |ab_stab - ab_fbf| per frame
    floor = []
    before = None
    for index, (truth, fbf, stab, motion, exact) in enumerate(zip(truth_frames, fbf_frames, stab_frames, motions, exact_frames)):
        labs = {"truth": lab_of(truth), "frame_by_frame": lab_of(fbf), "stabilised": lab_of(stab)}
        if exact is not None:
            labs["truth_exact"] = lab_of(exact)
        abs_ = {k: v[..., 1:] for k, v in labs.items()}
        abs_["steady"] = smoothed(abs_["truth"], size)
        if before is not None and motion is not None and motion.valid.any():
            for key in sums:
                sums[key].append(frame_change(before[key], abs_[key], motion))
            gain = np.linalg.norm(abs_["stabilised"], axis=-1).mean() / max(np.linalg.norm(abs_["steady"], axis=-1).mean(), 1e-6)
            floor.append(float(gain) * frame_change(before["steady"], abs_["steady"], motion))
        before = abs_
        gap.append(float(np.linalg.norm(abs_["stabilised"] - abs_["frame_by_frame"], axis=-1).mean()))
        if index % QUALITY_EVERY:
            continue
        t = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255
        lab_truth = torch.from_numpy(labs["truth"]).permute(2, 0, 1)[None]
        for key, rgb in (("frame_by_frame", fbf), ("stabilised", stab)):
            r = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            lab = torch.from_numpy(labs[key]).permute(2, 0, 1)[None]
            quality[key]["ciede2000"].append(float(ciede2000_map(lab, lab_truth).mean()))
            quality[key]["colourfulness"].append(float(colorfulness(r)[0]))
        quality["truth"]["colourfulness"].append(float(colorfulness(t)[0]))
    result = {"frames": len(gap), "flicker": {k: float(np.mean(v)) for k, v in sums.items()}}
    result["flicker_floor_stabilised"] = float(np.mean(floor))
    result["quality"] = {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in quality.items()}
    in_shot = [g for i, g in enumerate(gap) if not any(c <= i <= c + 2 for c in cut_frames)]
    result["gap_in_shot_median"] = float(np.median(in_shot)) if in_shot else math.nan
    result["cut_gap"] = {str(c): [gap[c + k] for k in range(3) if c + k < len(gap)] for c in cut_frames}
    return result


def memory_run(clip: str, out: str, model: str, size: int, stability: float) -> float:
    """Peak resident memory (MB) of colorizing ``clip`` in a fresh process."""
    code = ("import resource, sys; from colorgan_hf.video import colorize_video; "
            f"colorize_video({clip!r}, {out!r}, {model!r}, size={size}, stability={stability}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(PHOTOS), help="Folder of held-out colour photos (every 25th is filmed).")
    parser.add_argument("--real", default=None, help="A real colour clip to add (scaled to the bench size, sound kept).")
    parser.add_argument("--model", default=DEFAULT_VIDEO_MODEL,
                        help="The model benched: a shipped name or a folder (default: the one videos use unless told).")
    parser.add_argument("--size", type=int, default=DEFAULT_VIDEO_SIZE, help="Working resolution (short side).")
    parser.add_argument("--stability", type=float, default=DEFAULT_STABILITY, help="Stability of the stabilised run.")
    parser.add_argument("--frames", type=int, default=SHOT_FRAMES, help="Frames of each clip.")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--no-memory", action="store_true", help="Skip the memory runs.")
    parser.add_argument("--json", default=str(ROOT / "bench" / "video.json"), help="Where to write the results.")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    model = load_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="colorgan-video-bench-"))
    clips = make_clips(work, Path(args.photos), args.frames, args.width, args.height)
    cases = {name: (clip.path, clip.motion, clip.cuts, clip.truth) for name, clip in clips.items()}
    if args.real:
        real = scale_real(Path(args.real), work / "real.mp4", args.width, args.height)
        frames = list(read_frames(real))  # a short clip: its motion is worked out up front
        motions = [None] + [flow_motion(a, b) for a, b in zip(frames, frames[1:])]
        cuts = [i for i, m in enumerate(motions) if m is not None and m.valid.mean() < 0.3]
        motions = [None if i in cuts else m for i, m in enumerate(motions)]
        del frames
        cases["real"] = (real, motions.__getitem__, cuts, None)
    colorize_video(clips["pan1"].path, work / "warmup.mp4", model, size=args.size, stability=args.stability)

    results = {"model": args.model, "size": args.size, "stability": args.stability, "width": args.width, "height": args.height,
               "torch_threads": torch.get_num_threads(), "clips": {}}
    for name, (path, motion_of, cuts, exact_of) in cases.items():
        runs = {}
        for label, stability in (("frame_by_frame", 0.0), ("stabilised", args.stability)):
            runs[label] = colorize_video(path, work / f"{name}_{label}.mp4", model, size=args.size, stability=stability)
        info = probe_video(runs["stabilised"].path)
        source = probe_video(path)
        count = runs["stabilised"].frames
        row = score(read_frames(path), read_frames(runs["frame_by_frame"].path), read_frames(runs["stabilised"].path),
                    (motion_of(i) for i in range(count)), cuts,
                    (exact_of(i) for i in range(count)) if exact_of is not None else None, args.size)
        # The same two runs written lossless (x264 CRF 0): the flicker the stabiliser leaves, the
        # encoder's own part left out (at CRF 18 it smooths some of frame by frame's flicker away).
        row["flicker_lossless"] = {}
        for label, stability in (("frame_by_frame", 0.0), ("stabilised", args.stability)):
            done = colorize_video(path, work / f"{name}_{label}_lossless.mp4", model, size=args.size, stability=stability, crf=0)
            row["flicker_lossless"][label] = flicker((lab_of(f)[..., 1:] for f in read_frames(done.path)),
                                                     (motion_of(i) for i in range(count)))
        row.update({
            "cuts_true": cuts, "cuts_found": runs["stabilised"].cuts,
            "fps_end_to_end": {k: r.frames_per_second for k, r in runs.items()},
            "seconds": {k: r.elapsed for k, r in runs.items()},
            "output": {"frames": info.frames, "size": [info.width, info.height], "fps": str(info.fps),
                       "seconds": info.seconds, "audio": info.audio},
            "input": {"frames": source.frames, "size": [source.width, source.height], "fps": str(source.fps),
                      "seconds": source.seconds, "audio": source.audio},
        })
        results["clips"][name] = row
        print(f"{name}: done ({count} frames)", file=sys.stderr, flush=True)

    if not args.no_memory:
        long_clip = render_clip(work / "long.mp4", [(clips["pan1"].shots[0].photo, "pan", 4 * args.frames)],
                                width=args.width, height=args.height)
        results["memory_mb"] = {
            f"{args.frames} frames": memory_run(str(clips["pan1"].path), str(work / "m1.mp4"), args.model, args.size, args.stability),
            f"{4 * args.frames} frames": memory_run(str(long_clip.path), str(work / "m2.mp4"), args.model, args.size, args.stability),
        }

    print_table(results)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


def print_table(results: dict) -> None:
    print(f"video bench: {results['width']}x{results['height']}, working size {results['size']}, "
          f"stability {results['stability']}, {results['torch_threads']} torch threads")
    head = ("clip", "frames", "flicker truth (exact)", "flicker fbf", "flicker stab", "stab/truth", "stab/fbf",
            "CIEDE fbf", "CIEDE stab", "colourf. fbf", "colourf. stab", "fps stab", "fps fbf")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for name, row in results["clips"].items():
        f, q = row["flicker"], row["quality"]
        print(" | ".join([
            name, str(row["frames"]), f"{f['truth']:.2f}" + (f" ({f['truth_exact']:.2f})" if "truth_exact" in f else ""), f"{f['frame_by_frame']:.2f}", f"{f['stabilised']:.2f}",
            f"{f['stabilised'] / f['truth']:.2f}", f"{f['stabilised'] / f['frame_by_frame']:.2f}",
            f"{q['frame_by_frame']['ciede2000']:.2f}", f"{q['stabilised']['ciede2000']:.2f}",
            f"{q['frame_by_frame']['colourfulness']:.1f}", f"{q['stabilised']['colourfulness']:.1f}",
            f"{row['fps_end_to_end']['stabilised']:.1f}", f"{row['fps_end_to_end']['frame_by_frame']:.1f}",
        ]))
    print("\nflicker of the same runs written lossless (x264 CRF 0; truth: the frames as rendered, before encoding):")
    print("clip | flicker truth (as rendered) | flicker fbf | flicker stab | stab/truth | stab/fbf\n--- | --- | --- | --- | --- | ---")
    for name, row in results["clips"].items():
        f, lossless = row["flicker"], row["flicker_lossless"]
        truth = f.get("truth_exact")
        print(" | ".join([name, f"{truth:.2f}" if truth is not None else "-", f"{lossless['frame_by_frame']:.2f}",
                          f"{lossless['stabilised']:.2f}", f"{lossless['stabilised'] / truth:.2f}" if truth is not None else "-",
                          f"{lossless['stabilised'] / lossless['frame_by_frame']:.2f}"]))
    print("\nthe measure's floor (the truth's colours smoothed to the working size, scaled to the stabilised chroma: "
          "steady by construction) against the stabilised output, as written:")
    print(", ".join(f"{name} {row['flicker_floor_stabilised']:.2f} / {row['flicker']['stabilised']:.2f}" for name, row in results["clips"].items()))
    for name, row in results["clips"].items():
        if row["cuts_true"]:
            gaps = "; ".join(f"cut at {c}: " + ", ".join(f"{g:.2f}" for g in v) for c, v in row["cut_gap"].items())
            print(f"{name}: cuts at {row['cuts_true']}, stabiliser started afresh at {row['cuts_found']}; "
                  f"|ab stab - ab fbf| at the cut and 2 frames after: {gaps} (median within shots {row['gap_in_shot_median']:.2f})")
        print(f"{name}: in {row['input']}, out {row['output']}")
    synthetic = [row for name, row in results["clips"].items() if name != "real"]
    mean = lambda key, metric: float(np.mean([r["quality"][key][metric] for r in synthetic]))  # noqa: E731
    ciede_ratio = mean("stabilised", "ciede2000") / mean("frame_by_frame", "ciede2000")
    colour_ratio = mean("stabilised", "colourfulness") / mean("frame_by_frame", "colourfulness")
    results["summary"] = {
        "synthetic_ciede2000": {"frame_by_frame": mean("frame_by_frame", "ciede2000"), "stabilised": mean("stabilised", "ciede2000")},
        "synthetic_colourfulness": {"frame_by_frame": mean("frame_by_frame", "colourfulness"), "stabilised": mean("stabilised", "colourfulness"),
                                    "truth": mean("truth", "colourfulness")},
        "ciede2000_ratio": ciede_ratio, "colourfulness_ratio": colour_ratio,
        "fps_stabilised_min": min(r["fps_end_to_end"]["stabilised"] for r in results["clips"].values()),
    }
    print(f"synthetic clips, mean over clips: CIEDE2000 frame by frame {mean('frame_by_frame', 'ciede2000'):.2f}, stabilised "
          f"{mean('stabilised', 'ciede2000'):.2f} (ratio {ciede_ratio:.3f}); colourfulness {mean('frame_by_frame', 'colourfulness'):.1f} "
          f"-> {mean('stabilised', 'colourfulness'):.1f} (ratio {colour_ratio:.3f}; truth {mean('truth', 'colourfulness'):.1f})")
    if "memory_mb" in results:
        print("peak resident memory: " + ", ".join(f"{k}: {v:.0f} MB" for k, v in results["memory_mb"].items()))


if __name__ == "__main__":
    main()

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from colorgan_hf.cli import main


def test_cli_colorizes_a_folder_and_names_the_corrupt_file(tmp_path, photo_paths, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(photo_paths[0], src / "a.jpg")
    shutil.copy(photo_paths[1], src / "sub" / "b.jpg")
    Image.open(photo_paths[2]).convert("L").save(src / "c.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"

    code = main(["-q", "colorize", str(src), "-o", str(out), "--size", "128"])

    assert code != 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err
    assert sum("error" in line for line in err.splitlines()) == 1, err
    assert (out / "a_color.jpg").is_file()
    assert (out / "sub" / "b_color.jpg").is_file()
    assert (out / "c_color.png").is_file()
    assert not (out / "broken_color.jpg").exists()
    assert Image.open(out / "sub" / "b_color.jpg").size == Image.open(photo_paths[1]).size
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before, "inputs must never change"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "no temporary files left behind"


def test_cli_never_overwrites_inputs(tmp_path, photo_paths):
    src = tmp_path / "a_color.jpg"
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    shutil.copy(photo_paths[1], src)
    original = src.read_bytes()
    # Writing into the input folder: a.jpg -> a_color.jpg, which is itself an input.
    code = main(["-q", "colorize", str(tmp_path / "a.jpg"), str(src), "-o", str(tmp_path)])
    assert code != 0
    assert src.read_bytes() == original


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "colorgan_hf.cli", "colorize", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--saturation" in result.stdout and "--size" in result.stdout


import os
import signal
import time

import numpy as np
import pytest


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colorgan_hf.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def small_photo(path, photo_paths, index=0, size=(96, 64)):
    Image.open(photo_paths[index]).convert("L").resize(size).save(path)
    return path


def test_output_names_are_unique_per_input(tmp_path, photo_paths, capsys):
    """Issue 16.7: a.jpg a.JPG a.png a.gif a.bmp gave 3 refusals, or with --overwrite 5 inputs -> 2 outputs."""
    src = tmp_path / "in"
    src.mkdir()
    for index, name in enumerate(["a.jpg", "a.JPG", "a.png", "a.gif", "a.bmp", "b.jpg"]):
        image = Image.open(photo_paths[index % len(photo_paths)]).convert("RGB").resize((64 + 16 * index, 48))
        image.save(src / name, format={"jpg": "JPEG", "JPG": "JPEG"}.get(name.split(".")[1], name.split(".")[1].upper()))
    out = tmp_path / "out"
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "64", "--overwrite"]) == 0
    outputs = sorted(p.name for p in out.iterdir())
    assert len(outputs) == 6 and len({name.lower() for name in outputs}) == 6, outputs
    assert "b_color.jpg" in outputs, "a name no other input shares stays NAME_color.EXT"
    widths = sorted(Image.open(p).width for p in out.iterdir())
    assert widths == [64 + 16 * i for i in range(6)], "each input has its own output"
    assert "colorized 6 of 6" in capsys.readouterr().err


def test_output_folder_inside_the_input_folder_is_never_read(tmp_path, photo_paths, capsys):
    """Issue 16.7: -o in/out, then a second run colorized its own outputs (*_color_color.jpg)."""
    src = tmp_path / "in"
    src.mkdir()
    small_photo(src / "a.jpg", photo_paths)
    small_photo(src / "b.png", photo_paths, 1)
    out = src / "out"
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "64"]) == 0
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "64", "--skip-existing"]) == 0
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a_color.jpg", "b_color.png"]
    assert "colorized 0 of 2 image(s)" in capsys.readouterr().err.splitlines()[-1]


def test_skip_existing_after_adding_photos(tmp_path, photo_paths, capsys):
    """Issue 14.5: re-running after adding photos failed on every earlier file ("exists", exit 1)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        small_photo(src / f"p{i}.jpg", photo_paths, i)
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "64"]) == 0
    small_photo(src / "new.jpg", photo_paths, 3)
    capsys.readouterr()
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "64", "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert "colorized 1 of 4 image(s)" in err and "3 skipped" in err and "error" not in err, err
    assert (out / "new_color.jpg").is_file()


def test_one_bad_file_is_its_own_error_line_and_never_ends_the_batch(tmp_path, photo_paths, capsys, monkeypatch):
    """Issue 16.8: a float TIFF with one NaN pixel (IndexError) and a MemoryError (a 100,000,000x1 PNG in to_pil)
    ended the whole batch with a traceback."""
    src = tmp_path / "in"
    src.mkdir()
    nan = np.full((40, 60), 0.5, np.float32)
    nan[3, 4] = np.nan
    Image.fromarray(nan, mode="F").save(src / "a_nan.tif")
    small_photo(src / "b_good.jpg", photo_paths)
    small_photo(src / "c_memory.png", photo_paths, 1)
    small_photo(src / "d_good.png", photo_paths, 2)
    import colorgan_hf.pipeline as pipeline

    real = pipeline._finish  # where the 100,000,000x1 PNG's MemoryError came from (to_pil)

    def flaky(prepared, *args, **kwargs):
        if "c_memory" in prepared.name:
            raise MemoryError("cannot allocate")
        return real(prepared, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_finish", flaky)
    code = main(["-q", "colorize", str(src), "-o", str(tmp_path / "out"), "--size", "64"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("colorgan: error:")]
    assert len(errors) == 1 and "c_memory.png" in errors[0] and "MemoryError" in errors[0], err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_nan_color.tif", "b_good_color.jpg", "d_good_color.png"]
    assert "colorized 3 of 4" in err and "1 failed" in err


def test_very_wide_strip_is_colorized(tmp_path, photo_paths):
    """A 2,000,000x1 PNG goes through the transposed banding (the 100,000,000x1 case, at a test's size)."""
    from colorgan_hf import colorize

    strip = tmp_path / "strip.png"
    Image.new("L", (2_000_000, 1), 100).save(strip)
    out = colorize(strip, size=64)
    assert out.size == (2_000_000, 1)


@pytest.mark.skipif(not os.environ.get("COLORGAN_SLOW_TESTS"), reason="slow (about 2 minutes, 1.7 GB): set COLORGAN_SLOW_TESTS=1")
def test_cli_on_a_100_million_by_1_png(tmp_path, photo_paths):
    """Issue 16.8 as reported: the 100,000,000x1 PNG is that file's error line (Pillow cannot encode a line that
    long) or an output; the other file is colorized either way."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    src = tmp_path / "in"
    src.mkdir()
    width = 100_000_000
    (src / "wide.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0))
                                   + chunk(b"IDAT", zlib.compress(b"\x00" + b"\x80" * width, 9)) + chunk(b"IEND", b""))
    small_photo(src / "z.jpg", photo_paths)
    result = run_cli("-q", "colorize", str(src), "-o", str(tmp_path / "out"), "--size", "64", timeout=600)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (tmp_path / "out" / "z_color.jpg").is_file()


def test_nan_weights_are_a_clear_error(tmp_path, photo_paths, tiny_unet):
    """Issue 16.8: a generator with NaN weights: refused with one message, never a traceback."""
    import copy

    import torch

    broken = copy.deepcopy(tiny_unet)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    from colorgan_hf import ColorGANError, colorize

    with pytest.raises(ColorGANError, match="non-finite"):
        colorize(photo_paths[0], broken, size=32)
    broken.save_pretrained(tmp_path / "nan_model")
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    result = run_cli("-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nan_model"), "--size", "32")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "nan" in result.stderr.lower() or "finite" in result.stderr.lower(), result.stderr
    assert not (tmp_path / "out" / "a_color.jpg").exists()


@pytest.mark.parametrize("size", ["0", "8", "-16", "4096", "8192"])
def test_size_out_of_bounds_is_a_clear_error(tmp_path, photo_paths, size):
    """Issue 16.9: --size 0/8/-16 gave tracebacks; 4096/8192 on a small photo took 12-24 GB."""
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    result = run_cli("-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--size", size, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--size must be" in result.stderr and "2048" in result.stderr, result.stderr
    # Review s4, 12a: option errors said "colorgan: ERROR:", the per-file ones "colorgan: error:".
    assert result.stderr.startswith("colorgan: error: --size must be"), result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["png/../../x.png", "../x", "ico", "gif", "exe"])
def test_format_cannot_write_outside_the_output_folder_or_resize(tmp_path, photo_paths, fmt):
    """Issue 16.9: --format "png/../../x.png" wrote outside -o; --format ico resized the output."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    photo = small_photo(work / "a.jpg", photo_paths)
    before = {p for p in tmp_path.rglob("*")}
    result = run_cli("-q", "colorize", str(photo), "-o", str(work / "out"), "--format", fmt, timeout=60)
    assert result.returncode == 1 and "--format must be one of" in result.stderr, result.stderr
    assert {p for p in tmp_path.rglob("*")} == before, "nothing written anywhere"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_leave_no_tmp_files(tmp_path, photo_paths, signum):
    """Issue 16.9: SIGTERM/SIGHUP while saving left .tmp files."""
    src = tmp_path / "in"
    src.mkdir()
    big = Image.open(photo_paths[0]).convert("RGB").resize((3000, 2000))
    for i in range(12):
        big.save(src / f"p{i:02d}.png", compress_level=0)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "colorgan_hf.cli", "-q", "colorize", str(src), "-o", str(out), "--size", "64"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in out.glob(".*")):  # a write under way
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "no temporary file left"
    for written in out.glob("*.png"):
        assert Image.open(written).size == (3000, 2000), "every file under its final name is whole"


def test_stale_tmp_files_of_an_earlier_run_are_removed(tmp_path, photo_paths):
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a_color.jpg.x1y2z3.tmp"
    stale.write_bytes(b"half a jpeg")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert main(["-q", "colorize", str(photo), "-o", str(out), "--size", "64"]) == 0
    assert not stale.exists()


def archive_photo(path, photo_paths, quality=95):
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x010E] = "Grandma, 1952"
    exif[0x0112] = 1
    exif[0x8769] = {0x9003: "1952:06:01 10:00:00"}
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.open(photo_paths[1]).convert("RGB").save(path, quality=quality, exif=exif, icc_profile=icc, dpi=(600, 600))
    return path


def test_archive_metadata_and_jpeg_quality_are_kept(tmp_path, photo_paths):
    """Issue 14.4: JPEG at quality 75 (a quality-95 scan came out at less than half the size), EXIF, ICC, DPI dropped."""
    photo = archive_photo(tmp_path / "scan.jpg", photo_paths)
    out = tmp_path / "out"
    assert main(["-q", "colorize", str(photo), "-o", str(out)]) == 0
    result = Image.open(out / "scan_color.jpg")
    source = Image.open(photo)
    assert result.format == "JPEG" and result.quantization == source.quantization, "the scan's own quantization"
    assert (out / "scan_color.jpg").stat().st_size > 0.7 * photo.stat().st_size
    exif = result.getexif()
    assert exif[0x010E] == "Grandma, 1952" and exif.get_ifd(0x8769)[0x9003] == "1952:06:01 10:00:00"
    assert result.info["icc_profile"] == source.info["icc_profile"]
    assert tuple(round(v) for v in result.info["dpi"]) == (600, 600)
    # --quality and --format
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "q50"), "--quality", "50"]) == 0
    assert (tmp_path / "q50" / "scan_color.jpg").stat().st_size < 0.8 * (out / "scan_color.jpg").stat().st_size
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "png"), "--format", "PNG"]) == 0
    png = Image.open(tmp_path / "png" / "scan_color.png")
    assert png.format == "PNG" and png.getexif()[0x010E] == "Grandma, 1952" and png.info.get("icc_profile")


def test_exif_rotated_input_keeps_exif_upright(tmp_path, photo_paths):
    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "turned"
    Image.open(photo_paths[0]).convert("RGB").save(photo, exif=exif, quality=95)
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--size", "64"]) == 0
    result = Image.open(tmp_path / "out" / "rotated_color.jpg")
    source = Image.open(photo)
    assert result.size == (source.height, source.width)
    assert result.getexif()[0x0112] == 1 and result.getexif()[0x010E] == "turned"


def test_messages_go_above_the_progress_bar(tmp_path, photo_paths):
    """Issue 14.5: error messages were mixed into the progress bar."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        small_photo(src / f"p{i}.jpg", photo_paths, i)
    (src / "p1_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    result = run_cli("colorize", str(src), "-o", str(tmp_path / "out"), "--size", "64")
    segments = [segment for line in result.stderr.split("\n") for segment in line.split("\r")]
    errors = [segment for segment in segments if "error:" in segment]
    assert len(errors) == 1 and errors[0].startswith("colorgan: error:") and "p1_broken.jpg" in errors[0], result.stderr
    assert any("Colorizing" in segment for segment in segments), "the bar was shown"


def test_model_accepts_a_training_run_folder(tmp_path, photo_paths, tiny_unet):
    """Issue 14.9: --model runs/ck failed until pointed at runs/ck/generator."""
    tiny_unet.save_pretrained(tmp_path / "run" / "generator")
    (tmp_path / "run" / "checkpoint-10").mkdir()
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "run"), "--size", "32"]) == 0
    assert (tmp_path / "out" / "a_color.jpg").is_file()


def test_version():
    """Issue 14.9: `colorgan --version` exited 2."""
    from colorgan_hf import __version__

    result = run_cli("--version", timeout=60)
    assert result.returncode == 0 and __version__ in result.stdout


def test_non_finite_saturation_is_one_error_line_before_any_work(tmp_path, photo_paths):
    """Review s4, 1: --saturation nan/inf got past the check and failed on each photo with an IndexError."""
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    for value in ("nan", "inf"):
        result = run_cli("-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--saturation", value, timeout=120)
        assert result.returncode == 1, result.stderr[-2000:]
        assert result.stderr.splitlines() == [f"colorgan: error: --saturation must be a finite number >= 0, got {value}"], result.stderr
    assert not (tmp_path / "out").exists()


def test_build_dataset_refuses_a_nan_test_fraction_before_any_work(tmp_path, photo_paths, caplog, monkeypatch):
    """Review s4, 1 (the same hole elsewhere): --test-fraction was never checked; NaN reached `datasets` after the build."""
    from colorgan_hf import data

    monkeypatch.setattr(data, "build_pair_dataset", lambda *args, **kwargs: pytest.fail("the pair set was built"))
    assert main(["-q", "build-dataset", str(photo_paths[0].parent), "-o", str(tmp_path / "pairs"), "--test-fraction", "nan"]) == 1
    assert "--test-fraction must be between 0 and 1 (exclusive), got nan" in caplog.text


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_build_dataset_refuses_a_bad_tint_spread_before_any_work(tmp_path, photo_paths, caplog, monkeypatch, value):
    from colorgan_hf import data

    monkeypatch.setattr(data, "build_pair_dataset", lambda *args, **kwargs: pytest.fail("the pair set was built"))
    assert main(["-q", "build-dataset", str(photo_paths[0].parent), "-o", str(tmp_path / "pairs"), "--tint-spread", value]) == 1
    assert f"--tint-spread must be a finite number >= 0 (0 keeps tinted photos), got {value}" in caplog.text
    assert not (tmp_path / "pairs").exists()


@pytest.mark.parametrize("device, reason", [("banana", "not a device name"), ("cuda:7", "not available here")])
def test_a_bad_or_unavailable_device_is_one_error_before_any_work(tmp_path, photo_paths, caplog, monkeypatch, device, reason):
    """Review s4, 2: --device cuda (a CPU-only torch) or banana ended in a traceback once the run had started."""
    from colorgan_hf import OptionError, pipeline
    from colorgan_hf.batch import Processes

    monkeypatch.setattr(pipeline, "_generator", lambda *args: pytest.fail("the model was loaded"))
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--device", device]) == 1
    assert f"--device {device}: {reason}" in caplog.text, caplog.text
    assert not (tmp_path / "out").exists()
    with pytest.raises(OptionError, match=f"^--device {device}: {reason}"):
        Processes(device)  # the Python API's way in says the same


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, photo_paths, caplog, monkeypatch):
    """Review s4, 4: -o naming a file colorized every input, then failed on each with "[Errno 17] File exists"."""
    from colorgan_hf import data, pipeline

    monkeypatch.setattr(pipeline, "_generator", lambda *args: pytest.fail("the model was loaded"))
    monkeypatch.setattr(data, "build_pair_dataset", lambda *args, **kwargs: pytest.fail("the pair set was built"))
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    commands = [
        (["colorize", str(photo), "-o", str(afile)], f"-o {afile}: exists and is not a folder"),
        (["colorize", str(photo), "-o", str(afile / "sub")], f"-o {afile / 'sub'}: cannot be created, {afile} is a file, not a folder"),
        (["build-dataset", str(tmp_path), "-o", str(afile)], f"-o {afile}: exists and is not a folder"),
        (["colorize-dataset", str(tmp_path), "-o", str(afile)], f"-o {afile}: exists and is not a folder"),
        (["space-export", str(afile)], f"output_dir {afile}: exists and is not a folder"),
    ]
    for argv, message in commands:
        caplog.clear()
        assert main(["-q", *argv]) == 1, argv
        assert [record.getMessage() for record in caplog.records] == [message], argv
    assert afile.read_text() == "keep me"


EXTRAS_SCRIPT = r"""
import sys, traceback
for name in ("evaluate", "datasets", "onnx", "accelerate"):
    sys.modules[name] = None  # imports of them fail, as on an install without the extras
from colorgan_hf.cli import main
out = sys.argv[1]
for argv in (["evaluate", "--data", "tests/data", "--limit", "1"], ["card", "-o", f"{out}/card.md"],
             ["build-dataset", "tests/data", "-o", f"{out}/pairs"], ["colorize-dataset", "tests/data", "-o", f"{out}/set"],
             ["export-onnx", "-o", f"{out}/m.onnx"]):
    try:
        print(argv[0], main(["-q", *argv]))
    except BaseException:
        print(argv[0], "raised", traceback.format_exc().splitlines()[-1])
"""


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    """Review s4, 3: without the extras, evaluate, card, build-dataset, colorize-dataset and export-onnx
    printed a ModuleNotFoundError (or torch's OnnxExporterError) traceback."""
    from pathlib import Path

    result = subprocess.run([sys.executable, "-c", EXTRAS_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    assert result.stdout.splitlines() == ["evaluate 1", "card 1", "build-dataset 1", "colorize-dataset 1", "export-onnx 1"], \
        result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("colorgan: error:")]
    expected = [("colorgan evaluate", "evaluate", "train"), ("colorgan card", "evaluate", "train"),
                ("colorgan build-dataset", "datasets", "archive"), ("colorgan colorize-dataset", "datasets", "archive"),
                ("the ONNX export", "onnx", "onnx")]
    assert errors == [f'colorgan: error: {feature} needs {package}, which is not installed: pip install "colorgan-hf[{extra}]" '
                      f"(or: pip install {package})" for feature, package, extra in expected], result.stderr


def test_vividness_help_says_which_models_use_it(capsys):
    """Review s4, 5: the help said the shipped default uses --vividness; it is a unet_pair, which ignores it."""
    for command in ("colorize", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "for the classification architectures (unet_bins, semantic_bins, semantic_bins_pair)" in text, command
        assert "the others (the shipped default among them) ignore it" in text, command


def test_a_vividness_the_model_ignores_gets_one_warning(tmp_path, photo_paths, caplog):
    """Review s4, 5: --vividness 0 and 1 gave byte-identical photos with the default model, silently."""
    import logging

    from colorgan_hf import ColorGenerator

    ColorGenerator(architecture="unet_bins", base_channels=8, depth=3).save_pretrained(tmp_path / "bins")
    photo = small_photo(tmp_path / "a.jpg", photo_paths)
    caplog.set_level(logging.INFO, logger="colorgan")
    runs = {"default, --vividness 0.3": ["--vividness", "0.3"], "default": [],
            "unet_bins, --vividness 0.3": ["--vividness", "0.3", "--model", str(tmp_path / "bins")]}
    warned = {}
    for name, extra in runs.items():
        caplog.clear()
        assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--size", "32", "--overwrite", *extra]) == 0
        warned[name] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warned == {
        "default, --vividness 0.3": [("vividness 0.3 has no effect on model default (unet_pair): only the classification "
                                      "architectures (unet_bins, semantic_bins, semantic_bins_pair) use it")],
        "default": [], "unet_bins, --vividness 0.3": []}


def test_every_subcommand_has_a_description():
    """Review s4, 12c: `colorgan push --help` had no description paragraph."""
    import argparse

    from colorgan_hf.cli import build_parser

    subcommands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert [name for name, parser in subcommands.choices.items() if not parser.description] == []


def test_the_extras_table_names_extras_that_bring_those_packages():
    """The one-line hint for a missing module is only right while extras.OPTIONAL_MODULES agrees with
    pyproject.toml: each module's extra must list its PyPI package (directly or through another extra)."""
    import re
    import tomllib
    from pathlib import Path

    from colorgan_hf.extras import OPTIONAL_MODULES

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def packages(extra: str) -> set[str]:
        found = set()
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
            nested = re.fullmatch(r"colorgan-hf\[(.+)\]", requirement)
            found |= set().union(*(packages(e.strip()) for e in nested.group(1).split(","))) if nested else {name.lower()}
        return found

    for module, (extra, package) in OPTIONAL_MODULES.items():
        assert extra in extras, f"{module}: extra {extra!r} is not in pyproject.toml"
        assert package.lower() in packages(extra), f"{module}: pip install colorgan-hf[{extra}] does not bring {package}"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_auto_contrast_reaches_every_photo_of_a_run(tmp_path, photo_paths, workers):
    """colorgan colorize --auto-contrast: each photo is what colorize(..., auto_contrast=True) gives, on the batched path
    (workers) and the one-photo path alike; without the flag the faded photos come out otherwise."""
    from colorgan_hf import colorize, load_default

    src = tmp_path / "in"
    src.mkdir()
    for index in range(2):
        gray = np.asarray(Image.open(photo_paths[index]).convert("L").resize((96, 64)), dtype=np.float32)
        Image.fromarray((70 + 0.4 * gray).round().astype(np.uint8)).save(src / f"faded{index}.png")
    assert main(["-q", "colorize", str(src), "-o", str(tmp_path / "on"), "--auto-contrast", "--workers", workers]) == 0
    assert main(["-q", "colorize", str(src), "-o", str(tmp_path / "off"), "--workers", workers]) == 0
    model = load_default()
    for index in range(2):
        on = np.asarray(Image.open(tmp_path / "on" / f"faded{index}_color.png"))
        assert np.array_equal(on, np.asarray(colorize(src / f"faded{index}.png", model, auto_contrast=True)))
        assert not np.array_equal(on, np.asarray(Image.open(tmp_path / "off" / f"faded{index}_color.png")))


# ------------------------------------------------------------- what a user can get wrong, said before any work


def _said(capsys, caplog) -> str:
    """What the command said since the last call: stderr and the log (the CLI logs its errors)."""
    text = capsys.readouterr().err + caplog.text
    caplog.clear()
    return text


def _small_gray(path, size=(64, 48)):
    Image.open(PHOTOS_FOR_CLI[0]).convert("L").resize(size).save(path)
    return path


PHOTOS_FOR_CLI = sorted((Path(__file__).parent / "data").glob("*.jpg"))


def test_suggest_hints_never_writes_over_the_photo_or_a_users_file(tmp_path, tiny_unet, capsys, caplog):
    model = tmp_path / "model"
    tiny_unet.save_pretrained(model)
    photo = _small_gray(tmp_path / "p.png", (96, 64))
    original = photo.read_bytes()
    base = ["-q", "suggest-hints", str(photo), "-n", "2", "--size", "32", "--model", str(model)]
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    (tmp_path / "folder").mkdir()
    for extra, message in [
        (["--marked", str(photo)], f"--marked {photo}: is the input photo"),
        (["-o", str(photo)], f"-o {photo}: is the input photo"),
        (["-o", str(tmp_path / "folder")], "is a folder; name a file"),
        (["-o", str(mine)], f"-o {mine}: exists (pass --overwrite to replace it)"),
        (["-o", str(tmp_path / "h.json"), "--marked", str(tmp_path / "h.json")], "is the hints file of -o"),
        (["-o", str(photo / "x.json")], f"cannot be created, {photo} is a file"),
    ]:
        assert main(base + extra) == 1, extra
        err = _said(capsys, caplog)
        assert message in err and "Traceback" not in err, (extra, err)
    assert photo.read_bytes() == original and mine.read_text() == "my notes"
    assert not (tmp_path / "h.json").exists()

    # Where next, in place: the colours already given stay in the file, the next spots follow.
    hints = tmp_path / "h.json"
    assert main(base + ["-o", str(hints)]) == 0
    first = json.loads(hints.read_text())
    given = [{**first[0], "color": "red"}]
    hints.write_text(json.dumps(given))
    assert main(base + ["--hints", str(hints), "-o", str(hints)]) == 0
    again = json.loads(hints.read_text())
    assert again[:1] == given and [e["color"] for e in again[1:]] == [None, None]
    assert (again[1]["x"], again[1]["y"]) == (first[1]["x"], first[1]["y"])
    # A mask named relative to the hints file's folder is named relative to the new file's folder.
    (tmp_path / "masks").mkdir()
    mask = np.zeros((64, 96), np.uint8)
    mask[:10, :10] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "m.png")
    hints.write_text(json.dumps([{"mask": "masks/m.png", "color": "blue"}]))
    moved = tmp_path / "sub" / "next.json"
    assert main(base + ["--hints", str(hints), "-o", str(moved)]) == 0
    carried = json.loads(moved.read_text())[0]
    assert carried == {"mask": os.path.join("..", "masks", "m.png"), "color": "blue"}
    assert (moved.parent / carried["mask"]).is_file()
    # A hints file in UTF-16 (as some editors save it) is read, and carried, as UTF-8 is.
    wide = tmp_path / "wide.json"
    wide.write_bytes(json.dumps(given).encode("utf-16"))
    assert main(base + ["--hints", str(wide), "-o", str(tmp_path / "from_wide.json")]) == 0
    assert json.loads((tmp_path / "from_wide.json").read_text())[:1] == given
    # --overwrite replaces a file of the user's, never the photo.
    assert main(base + ["-o", str(mine), "--overwrite"]) == 0 and json.loads(mine.read_text())
    assert main(base + ["-o", str(photo), "--overwrite"]) == 1 and photo.read_bytes() == original


def test_inputs_that_cannot_mean_what_they_say_are_refused_before_any_work(tmp_path, photo_paths, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = _small_gray(tmp_path / "p.png")
    # An unset "$DIR": "" would be the current folder, everything below it.
    assert main(["-q", "colorize", "", str(photo), "-o", str(tmp_path / "o1")]) == 1
    assert main(["-q", "colorize", str(photo), "-o", ""]) == 1
    err = _said(capsys, caplog)
    assert "an input is an empty path" in err and "-o: an empty path" in err
    assert not (tmp_path / "o1").exists() and not list(tmp_path.glob("p_color*"))
    # Outputs asked for beside the originals: the folder's photos are all in the output folder.
    folder = tmp_path / "col"
    folder.mkdir()
    _small_gray(folder / "a.png")
    assert main(["-q", "colorize", str(folder), "-o", str(folder)]) == 1
    assert f"its 1 image(s) lie in the output folder {folder}, which is never read as input" in _said(capsys, caplog)
    monkeypatch.chdir(folder)  # `-o .` has no name of its own: the suggestion is made from the folder's
    assert main(["-q", "colorize", ".", "-o", "."]) == 1
    assert f"write to another folder, e.g. -o {tmp_path / 'col_color'}" in _said(capsys, caplog)
    monkeypatch.chdir(tmp_path)
    # Hints are for one photo: a video with --hints is refused, not colorized without them.
    hints = tmp_path / "h.json"
    hints.write_text('[{"x": 1, "y": 1, "color": "red"}]')
    assert main(["-q", "colorize", str(tmp_path / "film.mp4"), "-o", str(tmp_path / "o2"), "--hints", str(hints)]) == 1
    assert "--hints: colour hints are for one photo, and" in _said(capsys, caplog)


def test_a_pipe_a_symlink_loop_and_a_repeated_name_do_not_stop_the_batch(tmp_path, capsys, caplog):
    photo = _small_gray(tmp_path / "p.png")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # opening it would block the run for ever
    (tmp_path / "loop1.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop1.png")
    out = tmp_path / "out"
    code = main(["-q", "colorize", str(fifo), str(tmp_path / "loop1.png"), str(photo), str(photo),
                 str(tmp_path / "." / "p.png"), "-o", str(out), "--size", "32"])
    err = _said(capsys, caplog)
    assert code == 1
    assert f"{fifo}: not a regular file (a pipe, socket or device)" in err
    assert "loop1.png: a broken symbolic link (or a loop of them)" in err
    assert "Traceback" not in err
    # The same photo named three ways is colorized once, under its plain name.
    assert sorted(p.name for p in out.iterdir()) == ["p_color.png"]


def test_a_folder_the_run_cannot_write_is_said_once_before_any_work(tmp_path, capsys, caplog, monkeypatch):
    photo = _small_gray(tmp_path / "p.png")
    from colorgan_hf import files

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "done"), "--size", "32"]) == 0
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    # A finished run, read-only now (an archive): --skip-existing writes nothing, so it is no error.
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "done"), "--skip-existing"]) == 0
    assert "1 skipped" in _said(capsys, caplog)
    loaded = []
    monkeypatch.setattr("colorgan_hf.cli.run_generator", lambda name: loaded.append(name))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "ro")]) == 1
    said = _said(capsys, caplog)
    assert said.count("cannot write there") == 1
    assert f"-o {tmp_path / 'ro'}: cannot write there (Operation not permitted)" in said
    assert loaded == [], "the model is not even loaded"


def test_skip_existing_says_when_an_earlier_output_went_stale(tmp_path, capsys, caplog):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _small_gray(src / "b.png")
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "32"]) == 0
    _small_gray(src / "b.gif")  # b.png's output is now b_png_color.png: b_color.png would go stale unnoticed
    assert main(["-q", "colorize", str(src), "-o", str(out), "--size", "32", "--skip-existing"]) == 0
    said = _said(capsys, caplog)
    assert f"{out / 'b_color.png'} exists from an earlier run" in said and "remove b_color.png if it is stale" in said
    assert sorted(p.name for p in out.iterdir()) == ["b_color.png", "b_gif_color.png", "b_png_color.png"]


def test_evaluate_refuses_bad_arguments_before_scoring_and_fails_when_a_photo_failed(tmp_path, capsys, caplog, monkeypatch):
    from colorgan_hf import evaluation

    folder = tmp_path / "ev"
    folder.mkdir()
    photo = folder / "a.jpg"
    Image.open(PHOTOS_FOR_CLI[0]).resize((48, 32)).save(photo)
    scored = []
    real = evaluation.evaluate_models
    monkeypatch.setattr(evaluation, "evaluate_models", lambda *a, **k: scored.append(a) or real(*a, **k))
    for args, message in [
        (["--data", str(photo)], f"--data {photo}: is a file"),
        (["--data", str(tmp_path / "missing")], f"--data {tmp_path / 'missing'}: no such folder"),
        (["--data", str(folder), "--size", "0"], "--size must be between 1 and 2048"),
        (["--data", str(folder), "--output", str(folder)], f"--output {folder}: is a folder"),
        (["--data", str(folder), "--output", str(photo / "x.json")], f"cannot be created, {photo} is a file"),
    ]:
        assert main(["-q", "evaluate"] + args) == 1, args
        err = _said(capsys, caplog)
        assert message in err and "Traceback" not in err, (args, err)
    assert scored == [], "nothing was scored"
    # Below the model's stride every photo would fail: refused once.
    assert main(["-q", "evaluate", "--data", str(folder), "--size", "8"]) == 1
    assert "--size must be between the model's stride 16 and 2048 for default, got 8" in _said(capsys, caplog)
    # A photo that cannot be scored: the others are, the JSON is written, and the status says it.
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    result = tmp_path / "new" / "r.json"
    assert main(["-q", "evaluate", "--data", str(folder), "--size", "32", "--output", str(result)]) == 1
    written = json.loads(result.read_text())
    assert written["images"] == 1 and list(written["failed"]) == ["bad.jpg"]

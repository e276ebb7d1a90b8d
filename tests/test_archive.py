"""Issue 19, archive scale: `colorgan colorize` on two real CPU processes under `accelerate launch`
(every file once, a killed job resumed with --skip-existing), the batch engine, and colorize-dataset."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from colorgan_hf.cli import main

ACCELERATE = shutil.which("accelerate")
needs_accelerate = pytest.mark.skipif(ACCELERATE is None, reason="accelerate CLI not installed")


def launch_two(*args: str, entry: tuple[str, ...] = ("-m", "colorgan_hf.cli")) -> list[str]:
    """The command line of `colorgan colorize` on two CPU processes, as the training tests launch them
    (``entry``: the module, or ``("--no_python", "colorgan")`` for the console script)."""
    return [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", *entry, "-q", "colorize", *args]


ENV = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def make_folder(root: Path, photo_paths, count: int, size=(96, 64)) -> list[Path]:
    files = []
    for i in range(count):
        path = root / ("sub" if i % 3 == 0 else "") / f"p{i:02d}.{'png' if i % 2 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.open(photo_paths[i % len(photo_paths)]).convert("L").resize((size[0] + 16 * (i % 3), size[1])).save(path)
        files.append(path)
    return files


def outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@needs_accelerate
@pytest.mark.parametrize("entry", [("-m", "colorgan_hf.cli"), ("--no_python", "colorgan")], ids=["module", "console-script"])
def test_two_processes_colorize_every_file_once(tmp_path, photo_paths, entry):
    if entry[0] == "--no_python" and shutil.which("colorgan") is None:
        pytest.skip("the colorgan console script is not on PATH")
    src, out = tmp_path / "in", tmp_path / "out"
    files = make_folder(src, photo_paths, 8)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    proc = subprocess.run(launch_two(str(src), "-o", str(out), "--size", "32", "--batch-size", "3", entry=entry), env=ENV,
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, "a failed file fails the run, on every process"
    expected = sorted(str(f.relative_to(src).with_name(f"{f.stem}_color{f.suffix}")) for f in files)
    assert outputs(out) == expected, "every input once, nothing else (no .tmp, no result files)"
    for file in files:
        target = out / file.relative_to(src).with_name(f"{file.stem}_color{file.suffix}")
        assert Image.open(target).size == Image.open(file).size
    summaries = re.findall(r"colorized (\d+) of (\d+) image\(s\).*; 1 failed \(2 processes: (\d+) \+ (\d+) colorized\)", log)
    assert len(summaries) == 1, log[-3000:]  # printed once, by the main process
    done, total, first, second = map(int, summaries[0])
    assert (done, total) == (8, 9) and first + second == 8 and first >= 3 and second >= 3, "both processes took a share"
    assert sum("colorgan: error:" in line and "broken.jpg" in line for line in log.splitlines()) == 1, "said once, as it happened"
    assert re.search(r"failed: \S*broken\.jpg: ", log), "and listed again under the summary"


def finished(out: Path) -> list[Path]:
    """Outputs under their final names (not the hidden temporary files of writes under way)."""
    return [p for p in out.rglob("*_color.*") if not p.name.startswith(".")]


@needs_accelerate
def test_killed_two_process_job_resumes_with_skip_existing(tmp_path, photo_paths):
    src, out = tmp_path / "in", tmp_path / "out"
    files = make_folder(src, photo_paths, 10, size=(1600, 1200))  # PNG encoding at this size: the job takes seconds
    job = subprocess.Popen(launch_two(str(src), "-o", str(out), "--size", "32", "--batch-size", "1", "--workers", "1"),
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and job.poll() is None and not finished(out):
            time.sleep(0.02)
    finally:
        # The launcher and both processes (torchrun starts them in sessions of their own), as `kill -9` or a lost node would.
        family = [job.pid] + [child.pid for child in psutil.Process(job.pid).children(recursive=True)]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        job.wait(timeout=60)
        psutil.wait_procs([psutil.Process(pid) for pid in family if psutil.pid_exists(pid)], timeout=60)
    done_before = finished(out)
    assert 0 < len(done_before) < len(files), "killed part-way"
    # What kill -9 may leave: a half-written temporary file (aged: the next run removes those older than 10 minutes).
    stale = out / ".p01_color.png.abc123.tmp"
    stale.write_bytes(b"half a png")
    for leftover in out.rglob(".*.tmp"):
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    before = {p: p.stat().st_mtime_ns for p in done_before}

    proc = subprocess.run(launch_two(str(src), "-o", str(out), "--size", "32", "--skip-existing"), env=ENV,
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert len(outputs(out)) == len(files) and not [p for p in out.rglob("*.tmp")], outputs(out)
    assert {p: p.stat().st_mtime_ns for p in done_before} == before, "earlier outputs left alone"
    rest = len(files) - len(done_before)
    assert f"colorized {rest} of {len(files)} image(s) into {out}; {len(done_before)} skipped (already there)" in log, log[-3000:]


def test_engine_batches_by_working_shape_and_matches_colorize(tmp_path, photo_paths, tiny_unet, monkeypatch):
    """Photos of two sizes go through the network in batches of one working shape each; the results
    equal colorize() of each photo alone."""
    from colorgan_hf import colorize
    from colorgan_hf.batch import ColorizeSettings, colorize_share

    files = make_folder(tmp_path / "in", photo_paths, 6)  # 3 widths: 96, 112, 128 at height 64
    jobs = [(f, tmp_path / "out" / f"{f.stem}.png") for f in files]
    shapes = []
    real = tiny_unet.predict_ab
    monkeypatch.setattr(tiny_unet, "predict_ab", lambda batch, vividness=None: shapes.append(tuple(batch.shape)) or real(batch, vividness))
    result = colorize_share(jobs, tiny_unet, ColorizeSettings(size=32), batch_size=4, workers=2)
    assert (result.done, result.skipped, result.failures) == (6, 0, [])
    assert sorted(shape[0] for shape in shapes) == [2, 2, 2], "three working shapes, two photos each: three real batches"
    assert len({shape[2:] for shape in shapes}) == 3
    monkeypatch.undo()
    for source, target in jobs:
        alone = colorize(source, tiny_unet, size=32)
        written = Image.open(target).convert("RGB")
        assert written.size == alone.size
        assert max(abs(a - b) for a, b in zip(written.tobytes(), alone.convert("RGB").tobytes())) <= 1


def test_engine_flags_are_checked(tmp_path, photo_paths, caplog):
    files = make_folder(tmp_path / "in", photo_paths, 1)
    assert main(["-q", "colorize", str(files[0]), "-o", str(tmp_path / "out"), "--batch-size", "0"]) == 1
    assert "--batch-size" in caplog.text and not (tmp_path / "out").exists()


def saved_dataset(folder: Path, photo_paths) -> Path:
    from datasets import Dataset, Features, Image as ImageFeature, Value

    rows = [{"image": {"bytes": p.read_bytes(), "path": p.name}, "caption": f"photo {i}", "id": i} for i, p in enumerate(photo_paths)]
    rows.insert(2, {"image": {"bytes": b"\xff\xd8\xff\xe0 not a jpeg", "path": "bad.jpg"}, "caption": "bad", "id": 99})
    features = Features({"image": ImageFeature(), "caption": Value("string"), "id": Value("int64")})
    Dataset.from_list(rows, features=features).save_to_disk(str(folder))
    return folder


def test_colorize_dataset_keeps_the_other_columns_and_reports_bad_rows(tmp_path, photo_paths, capsys):
    from datasets import load_from_disk

    source = saved_dataset(tmp_path / "in", photo_paths)
    out = tmp_path / "out"
    code = main(["-q", "colorize-dataset", str(source), "--image_column", "image", "-o", str(out), "--size", "32", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1, "a bad row fails the status, not the run"
    assert f"colorized {len(photo_paths)} of {len(photo_paths) + 1} row(s)" in err and "1 failed" in err, err
    assert sum(line.startswith("colorgan: error: row 2 (bad.jpg)") for line in err.splitlines()) == 1, err
    result = load_from_disk(str(out))["train"]
    assert result.column_names == ["image", "caption", "id", "colorized", "colorize_error"]
    assert result["id"] == [0, 1, 99, 2, 3] and result["caption"][2] == "bad", "every row and column kept, in order"
    colorized, errors = result["colorized"], result["colorize_error"]
    assert colorized[2] is None and errors[2].startswith("row 2 (bad.jpg): ")
    for row, path in zip([0, 1, 3, 4], photo_paths):
        with Image.open(path) as original:
            assert colorized[row].size == original.size and colorized[row].mode == "RGB" and errors[row] is None
            assert colorized[row].format == "JPEG", "written in the input's format"
    assert not (out / ".colorgan-work").exists()


def test_colorize_dataset_streams_an_image_folder_to_parquet(tmp_path, photo_paths):
    from datasets import load_dataset

    files = make_folder(tmp_path / "photos", photo_paths, 3)
    out = tmp_path / "out"
    assert main(["-q", "colorize-dataset", str(tmp_path / "photos"), "--streaming", "-o", str(out), "--size", "32",
                 "--output_column", "color"]) == 0
    shards = sorted((out / "data").glob("*.parquet"))
    assert [p.name for p in shards] == ["train-00000-00000.parquet"]
    result = load_dataset("parquet", data_files=[str(p) for p in shards], split="train")
    assert {"image", "color", "colorize_error"} <= set(result.column_names)
    assert sorted(image.size for image in result["color"]) == sorted(Image.open(f).size for f in files)


def test_placed_generator_gives_the_same_colours_and_leaves_the_model_alone(tiny_unet, photo_paths):
    import numpy as np
    import torch

    from colorgan_hf import colorize
    from colorgan_hf.batch import place_generator

    placed = place_generator(tiny_unet, "cpu")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tiny_unet.modules()), "the caller's model is not changed"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in placed.modules()), "normalizations folded into the convolutions"
    before = np.asarray(colorize(photo_paths[0], tiny_unet, size=64)).astype(int)
    after = np.asarray(colorize(photo_paths[0], placed, size=64)).astype(int)
    assert np.abs(before - after).max() <= 1


def test_bf16_gives_nearly_the_same_colours(tmp_path, photo_paths):
    import numpy as np

    from colorgan_hf import load_default
    from colorgan_hf.batch import ColorizeSettings, colorize_share, place_generator

    model = place_generator(load_default(), "cpu")
    source = photo_paths[0]
    results = {}
    for bf16 in (False, True):
        target = tmp_path / f"{bf16}.png"
        assert colorize_share([(source, target)], model, ColorizeSettings(bf16=bf16), workers=0).done == 1
        results[bf16] = np.asarray(Image.open(target).convert("RGB")).astype(int)
    difference = np.abs(results[True] - results[False])
    assert difference.mean() < 1.0 and (difference > 1).mean() < 0.05, (difference.mean(), difference.max())


def test_photos_side_by_side_give_the_same_files_and_keep_going_past_a_bad_one(tmp_path, photo_paths, tiny_unet):
    """--photos-at-once: each thread takes whole photos; the outputs are those of one photo at a time,
    a broken file is that file's failure only, and existing outputs are skipped."""
    import numpy as np

    from colorgan_hf.batch import ColorizeSettings, colorize_share

    files = make_folder(tmp_path / "in", photo_paths, 7)
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    files.insert(3, broken)
    results = {}
    for at_once in (1, 3):
        out = tmp_path / f"out{at_once}"
        jobs = [(f, out / f"{f.stem}_{f.suffix[1:]}.png") for f in files]
        errors = []
        result = colorize_share(jobs, tiny_unet, ColorizeSettings(size=32), photos_at_once=at_once, on_error=errors.append)
        assert (result.done, result.skipped) == (7, 0)
        assert [name for name, _ in result.failures] == [str(broken)] and len(errors) == 1 and "broken.jpg" in errors[0]
        results[at_once] = {target.name: np.asarray(Image.open(target)) for _, target in jobs if target.exists()}
        again = colorize_share(jobs, tiny_unet, ColorizeSettings(size=32, skip_existing=True), photos_at_once=at_once)
        assert (again.done, again.skipped, len(again.failures)) == (0, 7, 1)
    assert results[1].keys() == results[3].keys() and len(results[1]) == 7
    for name in results[1]:
        assert np.array_equal(results[1][name], results[3][name]), name


def test_thread_plan_puts_a_photo_on_each_thread_only_where_it_pays():
    from colorgan_hf.batch import thread_plan

    assert thread_plan("cpu", 1, photos=500, threads=2) == (2, 1), "an archive on a CPU: a photo on each thread"
    assert thread_plan("cpu", 1, photos=3, threads=2) == (1, 2), "a few photos: all threads on each"
    assert thread_plan("cpu", 8, photos=500, threads=2) == (1, 2), "batches go through the network together"
    assert thread_plan("cuda", 1, photos=500, threads=8) == (1, 8), "a GPU runs the network"
    assert thread_plan("cpu", 1, photos=3, threads=8, photos_at_once=4) == (4, 2), "as asked, threads shared out"
    assert thread_plan("cpu", 1, photos=500, threads=2, photos_at_once=3) == (3, 1)


def test_photos_at_once_from_the_cli(tmp_path, photo_paths, caplog):
    files = make_folder(tmp_path / "in", photo_paths, 5)
    assert main(["-q", "colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--photos-at-once", "0"]) == 1
    assert "--photos-at-once" in caplog.text and not (tmp_path / "out").exists()
    assert main(["-q", "colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--threads", "2", "--photos-at-once", "2",
                 "--size", "64"]) == 0
    assert len(outputs(tmp_path / "out")) == len(files)


@pytest.mark.parametrize("native", [True, False])
def test_a_cpu_with_bfloat16_arithmetic_gets_a_hint_for_bf16_on_a_big_folder(tmp_path, photo_paths, caplog, monkeypatch, native):
    import logging

    import colorgan_hf.batch as batch
    import colorgan_hf.cli as cli

    monkeypatch.setattr(batch, "native_bf16_cpu", lambda: native)
    monkeypatch.setattr(cli, "BF16_HINT_PHOTOS", 3)
    caplog.set_level(logging.INFO, logger="colorgan")
    make_folder(tmp_path / "in", photo_paths, 3)
    assert main(["-q", "colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--size", "64"]) == 0
    assert ("--bf16 runs the network about twice as fast" in caplog.text) == native
    caplog.clear()
    assert main(["-q", "colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--size", "64", "--bf16"]) == 0
    assert "--bf16 runs the network" not in caplog.text  # already on
    assert len(outputs(tmp_path / "out2")) == 3

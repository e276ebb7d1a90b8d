"""Crash safety of training: kill -9 and resume, NaN losses, unusable data."""

import os
import signal
import subprocess
import sys
import time

import pytest

import torch
from PIL import Image

from colorgan_hf.errors import ColorGANError

from colorgan_hf import training as train_lib
from training import PHOTOS_DIR, TINY as TINY_FLAGS, TRAIN_PY, run, train_script

TINY = [*TINY_FLAGS, "--resolution", "32", "--validation_steps", "1000"]


def test_kill_9_then_resume_from_the_last_complete_checkpoint(train_pair_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(TRAIN_PY), "--dataset_dir", str(train_pair_dir), "--output_dir", str(out),
           "--max_train_steps", "100000", "--checkpointing_steps", "1", "--checkpoints_total_limit", "3", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "checkpoint-4").is_dir():
            assert proc.poll() is None, "training ended on its own"
            time.sleep(0.1)
        time.sleep(0.3)  # land the kill at some point inside the next steps or saves
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    complete = train_lib.list_checkpoints(out)
    assert complete, "at least one complete checkpoint survives"
    last = complete[-1]
    for name in ("model.safetensors", "model_1.safetensors", "optimizer.bin", "optimizer_1.bin"):
        assert (last / name).is_file(), f"{last} is complete"
    step = int(last.name.split("-")[1])
    result = run(["--dataset_dir", str(train_pair_dir), "--output_dir", str(out), "--max_train_steps", str(step + 2),
                  "--checkpointing_steps", "1000", "--resume_from_checkpoint", "latest", *TINY])
    assert result["global_step"] == step + 2
    assert (out / "generator" / "model.safetensors").is_file()


def test_non_finite_loss_stops_with_the_last_good_checkpoint_intact(train_pair_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_lib.pixel_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] > 2 else value

    monkeypatch.setattr(train_lib, "pixel_loss", poisoned)
    out = tmp_path / "run"
    with pytest.raises(ColorGANError, match="non-finite loss at step 2"):
        run(["--dataset_dir", str(train_pair_dir), "--output_dir", str(out), "--max_train_steps", "10", "--checkpointing_steps", "2", *TINY])
    from safetensors.torch import load_file

    weights = load_file(out / "checkpoint-2" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert not (out / "generator").exists()


def test_no_usable_images_is_a_clear_error_before_training(tmp_path):
    folder = tmp_path / "gray_only"
    folder.mkdir()
    for i, path in enumerate(sorted(PHOTOS_DIR.glob("*.jpg"))):
        Image.open(path).convert("L").save(folder / f"{i}.png")
    with pytest.raises(ColorGANError, match="usable"):
        run(["--train_data_dir", str(folder), "--output_dir", str(tmp_path / "o"), *TINY])
    assert not (tmp_path / "o" / "generator").exists()

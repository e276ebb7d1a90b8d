"""Crash safety of training: kill -9 and resume, NaN losses, unusable data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torch
from PIL import Image

from colorgan_hf import ColorGenerator
from colorgan_hf.errors import ColorGANError

from colorgan_hf import training as train_lib
from damaged import corrupt_one_row
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


def _args(data, out, *extra):
    return ["--dataset_dir", str(data), "--output_dir", str(out), *TINY, *extra]


def _steps_logged(path):
    return [h["step"] for h in json.loads((path / train_lib.HISTORY_FILE).read_text()) if "g_total" in h]


# ------------------------------------------------------------------------ argument checks (issue 16, item 9)


@pytest.mark.parametrize("flag, value", [
    ("--max_train_steps", "-5"), ("--max_train_steps", "0"), ("--checkpoints_total_limit", "-1"), ("--checkpointing_steps", "0"),
    ("--num_epochs", "0"), ("--validation_steps", "0"), ("--logging_steps", "0"), ("--train_batch_size", "0"),
    ("--rebalance_batches", "0"), ("--max_eval_samples", "-1"), ("--lr_warmup_steps", "-1"), ("--learning_rate", "0"),
    ("--learning_rate", "nan"), ("--label_noise", "0.7"), ("--adam_beta1", "1.5"), ("--adv_weight", "-1"),
    ("--dataloader_num_workers", "-2"), ("--gen_base_channels", "0"),
])
def test_bad_counts_and_rates_are_refused_before_anything_runs(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_script.parse_args(["--dataset_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), flag, value])
    assert exit_info.value.code == 2
    assert f"{flag} must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("preset, resolution, stride, nearest", [
    ("default", "70", 16, "64 or 80"), ("default", "16", 16, "32"), ("paper", "100", 8, "96 or 104"), ("paper", "1000", 8, "512"),
])
def test_a_resolution_the_generator_cannot_take_is_refused_before_anything_runs(preset, resolution, stride, nearest, tmp_path, capsys):
    # Before: a tensor-size RuntimeError at the first step, after the data and networks had loaded.
    with pytest.raises(SystemExit) as exit_info:
        train_script.parse_args(["--dataset_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), "--preset", preset,
                                 "--resolution", resolution])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--resolution {resolution} does not fit a {preset if preset == 'paper' else 'unet'} generator" in err
    assert f"multiples of its stride {stride}" in err and f"nearest valid: {nearest}" in err
    assert ("from 16 to 512" in err) == (preset == "paper"), "the paper's networks are built for a bounded size"
    assert not (tmp_path / "o").exists()


def test_a_resolution_is_checked_against_the_stride_of_the_init_generator(train_pair_dir, tmp_path):
    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)  # stride 4
    with pytest.raises(ColorGANError, match="--resolution 34 does not fit a unet generator: it takes multiples of its stride 4 "
                                            ".*nearest valid: 32 or 36"):
        run(["--dataset_dir", str(train_pair_dir), "--output_dir", str(tmp_path / "o"), "--init_generator", str(start),
             *TINY_FLAGS, "--resolution", "34", "--max_train_steps", "1"])
    assert not train_lib.list_checkpoints(tmp_path / "o")


# ------------------------------------------------------------------- output folders (issue 16, item 4)


def test_a_new_run_into_an_old_runs_folder_is_refused_and_overwrite_starts_over(train_pair_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    run(_args(train_pair_dir, out, "--max_train_steps", "2", "--checkpointing_steps", "1"))
    (out / "logs" / "colorgan").mkdir(parents=True)  # as TensorBoard leaves its runs
    (out / "logs" / "colorgan" / "events.out.tfevents.old").write_bytes(b"old run")
    (out / "notes.txt").write_text("mine")
    (out / "samples" / "picked.png").write_bytes(b"mine too")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "logs" not in p.parts}
    with pytest.raises(ColorGANError, match="holds an earlier run.*--resume_from_checkpoint latest.*--overwrite_output_dir"):
        run(_args(train_pair_dir, out, "--max_train_steps", "1", "--seed", "7"))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "logs" not in p.parts}
    assert after == before, "nothing of the earlier run was touched"

    result = run(_args(train_pair_dir, out, "--max_train_steps", "1", "--seed", "7", "--overwrite_output_dir"))
    assert result["global_step"] == 1
    assert [p.name for p in train_lib.list_checkpoints(out)] == ["checkpoint-1"], "the old run's checkpoints are gone"
    assert _steps_logged(out) == [1]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["picked.png", "step-0000001.png"], "no old grid is left to push"
    assert not (out / "logs").exists(), "the old run's TensorBoard runs are gone"
    assert (out / "notes.txt").read_text() == "mine", "files the training did not write are left alone"
    new, last = load_file(out / "generator" / "model.safetensors"), load_file(out / "checkpoint-1" / "model.safetensors")
    assert all(torch.equal(new[k], last[k]) for k in new), "the generator is the new run's"


def test_a_folder_locked_by_a_running_run_is_refused(train_pair_dir, tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # as a run in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ColorGANError, match="another training run is using this folder"):
            run(_args(train_pair_dir, out, "--max_train_steps", "1"))
        with pytest.raises(ColorGANError, match="another training run is using this folder"):
            run(_args(train_pair_dir, out, "--max_train_steps", "1", "--resume_from_checkpoint", "latest"))
    assert not train_lib.list_checkpoints(out) and not (out / "generator").exists()


def test_two_runs_started_together_on_one_folder(train_pair_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    logs = [tmp_path / f"stderr-{seed}.txt" for seed in (1, 2)]
    with open(logs[0], "w") as first, open(logs[1], "w") as second:
        procs = [subprocess.Popen([sys.executable, str(TRAIN_PY), *_args(train_pair_dir, out, "--max_train_steps", "3",
                                                                          "--checkpointing_steps", "1", "--logging_steps", "1",
                                                                          "--seed", str(seed))],
                                  stdout=subprocess.DEVNULL, stderr=handle) for seed, handle in ((1, first), (2, second))]
        codes = [proc.wait(timeout=300) for proc in procs]
    results = [(code, log.read_text()) for code, log in zip(codes, logs)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], [err[-2000:] for _, err in results]
    loser = next(err for code, err in results if code == 1)
    assert "another training run is using this folder" in loser or "holds an earlier run" in loser, loser[-2000:]
    assert "Traceback" not in loser
    # The winner's run is whole and its own: its generator is its last checkpoint's weights, its history one run's.
    assert [p.name for p in train_lib.list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert all(train_lib.checkpoint_problem(p) is None for p in train_lib.list_checkpoints(out))
    final, last = load_file(out / "generator" / "model.safetensors"), load_file(out / "checkpoint-3" / "model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    assert _steps_logged(out) == [1, 2, 3]


# ------------------------------------------------------------ resume never silently starts over (issue 14, item 3)


def test_a_missing_resume_checkpoint_is_refused_before_the_data_loads(train_pair_dir, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the checkpoint was checked")

    monkeypatch.setattr(train_script, "load_pairs", no_data)
    with pytest.raises(ColorGANError, match="--resume_from_checkpoint .*nosuch: no such checkpoint folder"):
        run(_args(train_pair_dir, tmp_path / "run", "--resume_from_checkpoint", str(tmp_path / "nosuch")))


def test_a_finished_run_resumes_from_its_final_checkpoint(train_pair_dir, tmp_path, caplog):
    out = tmp_path / "run"
    run(_args(train_pair_dir, out, "--max_train_steps", "3", "--checkpointing_steps", "1000", "--logging_steps", "1"))
    assert [p.name for p in train_lib.list_checkpoints(out)] == ["checkpoint-3"], "the end of training always checkpoints"
    caplog.clear()
    with caplog.at_level("INFO"):
        result = run(_args(train_pair_dir, out, "--max_train_steps", "5", "--checkpointing_steps", "1000", "--logging_steps", "1",
                           "--resume_from_checkpoint", "latest"))
    assert result["global_step"] == 5
    assert f"resumed from {out / 'checkpoint-3'} at step 3" in caplog.text
    assert _steps_logged(out) == [1, 2, 3, 4, 5], "steps 4-5 continue the run, none repeated"
    for checkpoint in train_lib.list_checkpoints(out):
        shutil.rmtree(checkpoint)
    with pytest.raises(ColorGANError, match="refusing to start over on top of it"):
        run(_args(train_pair_dir, out, "--max_train_steps", "5", "--resume_from_checkpoint", "latest"))


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_step_reached_exits_as_stopped_and_resume_continues_from_it(signum, status, train_pair_dir, tmp_path,
                                                                                            caplog):
    # A stopped run is not a finished one: 128 + the signal (as a shell reports it), so `train.py && colorgan push` stops.
    import re

    out = tmp_path / "run"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, str(TRAIN_PY), *_args(train_pair_dir, out, "--max_train_steps", "100000",
                                                                        "--checkpointing_steps", "100000")],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            done = [int(n) for n in re.findall(r"(\d+)/100000", log.read_text())]
            if done and max(done) >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == status, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"signal {int(signum)}: saving a checkpoint" in text
    checkpoints = train_lib.list_checkpoints(out)
    assert len(checkpoints) == 1 and train_lib.checkpoint_problem(checkpoints[0]) is None
    step = int(checkpoints[0].name.split("-")[1])
    assert step >= 2 and f"saved {checkpoints[0]}" in text
    assert f"stopped at step {step} of 100000; resume with --resume_from_checkpoint latest" in text
    assert "Traceback" not in text
    assert not (out / "generator").exists(), "a stopped run is not a finished one"
    with caplog.at_level("INFO"):
        result = run(_args(train_pair_dir, out, "--max_train_steps", str(step + 2), "--checkpointing_steps", "100000",
                           "--resume_from_checkpoint", "latest"))
    assert result["global_step"] == step + 2
    assert f"resumed from {checkpoints[0]} at step {step}" in caplog.text
    assert (out / "generator" / "model.safetensors").is_file()


def test_a_failed_push_at_the_end_is_one_error_line_and_status_1(train_pair_dir, tmp_path, monkeypatch, caplog):
    # As the Hub mixin's push reports an unreachable Hub: a ColorGANError, which the script turns into one line.
    def unreachable(model, repo_id, **kwargs):
        raise ColorGANError(f"cannot reach the Hub: nothing pushed to {repo_id}")

    monkeypatch.setattr(ColorGenerator, "push_to_hub", unreachable)
    out = tmp_path / "run"
    with caplog.at_level("INFO"):
        status = train_script.cli(_args(train_pair_dir, out, "--max_train_steps", "1", "--push_to_hub", "--hub_model_id", "me/x"))
    assert status == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["cannot reach the Hub: nothing pushed to me/x"]
    assert (out / "generator" / "model.safetensors").is_file(), "the run was saved before the push"


# ------------------------------------------------------- damaged checkpoints do not block latest (issue 16, item 5)


@pytest.fixture(scope="module")
def three_checkpoints(train_pair_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("three") / "run"
    run(_args(train_pair_dir, out, "--max_train_steps", "3", "--checkpointing_steps", "1", "--checkpoints_total_limit", "5"))
    return out


@pytest.fixture
def copy_of_run(three_checkpoints, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(three_checkpoints, out)
    return out


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_every_checkpoint_is_marked_complete_with_its_files(three_checkpoints):
    for checkpoint in train_lib.list_checkpoints(three_checkpoints):
        marker = json.loads((checkpoint / train_lib.COMPLETE_MARKER).read_text())
        files = {p.name: p.stat().st_size for p in checkpoint.iterdir() if p.name != train_lib.COMPLETE_MARKER}
        assert marker["files"] == files and {"model.safetensors", "optimizer.bin", train_lib.HISTORY_FILE} <= set(files)
        assert train_lib.checkpoint_problem(checkpoint) is None


def _resume(data, out, steps, *extra):
    return run(_args(data, out, "--max_train_steps", str(steps), "--checkpointing_steps", "1000", "--resume_from_checkpoint",
                     "latest", *extra))


@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.bin", "history.json", "empty checkpoint-9"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_whole_one(train_pair_dir, copy_of_run, damage, caplog):
    out = copy_of_run
    if damage == "empty checkpoint-9":
        bad, good = out / "checkpoint-9", out / "checkpoint-3"
        bad.mkdir()
    else:
        bad, good = out / "checkpoint-3", out / "checkpoint-2"
        _truncate(bad / damage)
    with caplog.at_level("INFO"):
        result = _resume(train_pair_dir, out, 4)
    assert result["global_step"] == 4
    assert f"skipping {bad}: " in caplog.text, "a warning names the skipped checkpoint"
    assert f"resumed from {good} at step {good.name.split('-')[1]}" in caplog.text
    assert (bad.parent / f"{bad.name}.damaged").is_dir() and not bad.exists(), "moved aside, out of latest's way"
    assert train_lib.latest_checkpoint(out)[0].name == "checkpoint-4"


def test_checkpoints_from_before_the_marker_are_accepted_when_their_files_load(train_pair_dir, copy_of_run, caplog):
    out = copy_of_run
    for checkpoint in train_lib.list_checkpoints(out):
        (checkpoint / train_lib.COMPLETE_MARKER).unlink()
    assert train_lib.checkpoint_problem(out / "checkpoint-3") is None
    for name in ("model.safetensors", "optimizer.bin", "history.json"):  # but not when one is damaged
        damaged = out / "damaged" / name
        shutil.copytree(out / "checkpoint-3", damaged)
        _truncate(damaged / name)
        assert name in (train_lib.checkpoint_problem(damaged) or ""), name
    assert "no model weights" in train_lib.checkpoint_problem(_empty(out / "checkpoint-8"))
    with caplog.at_level("INFO"):
        result = _resume(train_pair_dir, out, 4)
    assert result["global_step"] == 4 and f"resumed from {out / 'checkpoint-3'} at step 3" in caplog.text
    assert f"skipping {out / 'checkpoint-8'}" in caplog.text


def _empty(path):
    path.mkdir()
    return path


def test_a_named_damaged_checkpoint_or_none_whole_is_a_clear_error(train_pair_dir, copy_of_run):
    out = copy_of_run
    _truncate(out / "checkpoint-3" / "model.safetensors")
    with pytest.raises(ColorGANError, match="checkpoint-3: cannot resume from this checkpoint: model.safetensors is"):
        run(_args(train_pair_dir, out, "--max_train_steps", "4", "--resume_from_checkpoint", str(out / "checkpoint-3")))
    for name in ("checkpoint-1", "checkpoint-2"):
        _truncate(out / name / "optimizer.bin")
    with pytest.raises(ColorGANError, match="no checkpoint can be resumed from: checkpoint-3: .*checkpoint-1: optimizer.bin"):
        _resume(train_pair_dir, out, 4)
    assert not (out / "checkpoint-4").exists()


def test_interrupted_checkpoint_saves_are_cleared_on_the_next_run(train_pair_dir, copy_of_run):
    out = copy_of_run
    (out / "checkpoint-4.tmp").mkdir()
    (out / "checkpoint-4.tmp" / "model.safetensors").write_bytes(b"half")
    result = _resume(train_pair_dir, out, 4)
    assert result["global_step"] == 4 and not (out / "checkpoint-4.tmp").exists()
    assert train_lib.checkpoint_problem(out / "checkpoint-4") is None


# ---------------------------------------------------------------- the final save (issue 16, item 9: disk full)


def _disk_full(calls: list):
    """A ``save_pretrained`` that writes part of the folder, then fails as a full disk does."""
    import errno

    def save_pretrained(model, folder, *args, **kwargs):
        calls.append(folder)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README.md").write_bytes(b"")
        (folder / "model.safetensors").write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    return save_pretrained


def test_a_failing_final_save_leaves_no_half_written_generator(train_pair_dir, tmp_path, monkeypatch, caplog):
    from colorgan_hf import ColorGenerator

    out = tmp_path / "run"
    calls = []
    monkeypatch.setattr(ColorGenerator, "save_pretrained", _disk_full(calls))
    with pytest.raises(ColorGANError, match="could not save the run's final outputs .*No space left on device.*--resume_from_checkpoint latest"):
        run(_args(train_pair_dir, out, "--max_train_steps", "2", "--adv_weight", "0"))
    assert len(calls) == 1
    assert not (out / "generator").exists() and not list(out.glob(".generator*")), "no half-written generator/"
    assert train_lib.checkpoint_problem(out / "checkpoint-2") is None, "the final checkpoint is whole"
    monkeypatch.undo()
    with caplog.at_level("INFO"):
        result = _resume(train_pair_dir, out, 2, "--adv_weight", "0")
    assert result["global_step"] == 2 and "resumed from" in caplog.text
    assert ColorGenerator.from_pretrained(out / "generator").architecture == train_lib.PRESETS["default"]["architecture"]


def test_save_pretrained_atomic_keeps_the_previous_version_when_a_save_fails(tmp_path, monkeypatch):
    from colorgan_hf import ColorGenerator

    folder = tmp_path / "generator"
    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(ColorGenerator, "save_pretrained", _disk_full([]))
    with pytest.raises(OSError, match="No space left"):
        train_lib.save_pretrained_atomic(ColorGenerator(architecture="unet", base_channels=8, depth=3), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator"], "no temporary folder left"


# ------------------------------------------------------------ one corrupt row in the pair set (issue 16, item 6)


def test_a_corrupt_row_in_the_pair_set_is_skipped_and_training_goes_on(corrupt_pair_dir, tmp_path, caplog):
    data, bad_row = corrupt_pair_dir
    out = tmp_path / "run"
    # 5 steps of 2 cover the whole training split: the bad row is met, and met again after resuming.
    with caplog.at_level("WARNING"):
        result = run(["--dataset_dir", str(data), "--output_dir", str(out), *TINY, "--max_train_steps", "5"])
    assert result["global_step"] == 5
    assert f"pair set row {bad_row} (source " in caplog.text and "unreadable image, skipped" in caplog.text
    assert (out / "generator" / "model.safetensors").is_file()
    result = _resume(data, out, 10)
    assert result["global_step"] == 10


@pytest.fixture(scope="module")
def corrupt_pair_dir(train_pair_dir, tmp_path_factory):
    return corrupt_one_row(train_pair_dir, tmp_path_factory.mktemp("corrupt") / "pairs", row=3, splits=("train",)), 3


def test_a_corrupt_row_is_left_out_of_the_preloaded_pairs_too(corrupt_pair_dir, tmp_path, caplog):
    data, bad_row = corrupt_pair_dir
    with caplog.at_level("WARNING"):
        result = run(["--dataset_dir", str(data), "--output_dir", str(tmp_path / "run"), "--preload_data", *TINY,
                      "--max_train_steps", "3"])
    assert result["global_step"] == 3
    assert f"pair set row {bad_row} " in caplog.text and "unreadable image, skipped" in caplog.text


def test_preload_data_refuses_source_balancing(train_pair_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(["--dataset_dir", str(train_pair_dir), "--output_dir", str(tmp_path / "run"), "--preload_data", "--balance_sources"])
    assert "--preload_data" in capsys.readouterr().err

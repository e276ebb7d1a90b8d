import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from colorgan_hf import ColorGenerator

from colorgan_hf import training as train_lib
from training import TINY, TRAIN_PY, run, train_script


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_two_steps_write_a_checkpoint_and_a_loadable_generator(preset, train_image_dir, train_pair_dir, tmp_path):
    data = ["--dataset_dir", str(train_pair_dir), "--resolution", "32"] if preset == "default" else ["--train_data_dir", str(train_image_dir)]
    out = tmp_path / "run"
    result = run(["--preset", preset, "--output_dir", str(out), "--max_train_steps", "2", "--checkpointing_steps", "2",
                  "--validation_steps", "2", *(["--adv_weight", "1"] if preset == "default" else []), *data, *TINY])
    assert result["global_step"] == 2
    assert (out / "checkpoint-2").is_dir()
    generator = ColorGenerator.from_pretrained(out / "generator")
    assert generator.architecture == ("paper" if preset == "paper" else "unet")
    assert (out / "samples" / "step-0000002.png").is_file()
    assert (out / "loss_curves.png").is_file()
    history = json.loads((out / "history.json").read_text())
    assert any("test_pixel" in h for h in history)


def test_resume_continues_at_the_right_step_with_the_same_state(train_pair_dir, tmp_path):
    # A 3-step warm-up spans the interruption: the resumed run must pick up the scheduler's clock
    # (restarting it would train steps 3-4 at a third and two thirds of the rate).
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--checkpointing_steps", "2", "--validation_steps", "100",
              "--lr_warmup_steps", "3", "--logging_steps", "1", *TINY]
    straight = tmp_path / "straight"
    run(["--output_dir", str(straight), "--max_train_steps", "4", *common])
    stopped = tmp_path / "stopped"
    run(["--output_dir", str(stopped), "--max_train_steps", "2", *common])
    saved_optimizer = torch.load(stopped / "checkpoint-2" / "optimizer.bin", weights_only=True)
    assert all(s["step"] == 2 for s in saved_optimizer["state"].values())
    result = run(["--output_dir", str(stopped), "--max_train_steps", "4", "--resume_from_checkpoint", "latest", *common])
    assert result["global_step"] == 4
    resumed_optimizer = torch.load(stopped / "checkpoint-4" / "optimizer.bin", weights_only=True)
    assert all(s["step"] == 4 for s in resumed_optimizer["state"].values()), "Adam continued from the saved state"
    a = load_file(straight / "generator" / "model.safetensors")
    b = load_file(stopped / "generator" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=f"{name} differs after resuming")
    # The history travels in the checkpoint: the resumed run's curves cover steps 1-4, lr included.
    history_straight = [(h["step"], h["lr"]) for h in json.loads((straight / "history.json").read_text()) if "lr" in h]
    history_resumed = [(h["step"], h["lr"]) for h in json.loads((stopped / "history.json").read_text()) if "lr" in h]
    assert [step for step, _ in history_resumed] == [1, 2, 3, 4]
    # Compared as flat lists: pytest.approx does not take nested structures (pytest >= 9.2).
    assert [lr for _, lr in history_resumed] == pytest.approx([lr for _, lr in history_straight])


def test_every_epoch_has_its_means_across_a_resume(train_pair_dir, tmp_path):
    # Checkpoints that fall on an epoch's end must carry that epoch's means (the paper's Table 1),
    # or a resumed run would lose a row for every checkpoint.
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--max_train_samples", "4", "--checkpointing_steps", "2",
              "--validation_steps", "100", *TINY]
    out = tmp_path / "run"
    run(["--output_dir", str(out), "--max_train_steps", "4", *common])
    saved = json.loads((out / "checkpoint-4" / "history.json").read_text())
    assert [h["epoch"] for h in saved if "epoch_g_pixel" in h] == [0, 1]
    run(["--output_dir", str(out), "--max_train_steps", "6", "--resume_from_checkpoint", "latest", *common])
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history if "epoch_g_pixel" in h] == [0, 1, 2]
    assert all(h["epoch_d_loss"] > 0 for h in history if "epoch_d_loss" in h)


def test_a_run_resumed_mid_epoch_from_an_older_checkpoint_keeps_the_data_order_and_whole_epoch_means(train_pair_dir, tmp_path):
    # Table 1 takes the mean over every step of an epoch. A run stopped at step 3 and resumed from
    # checkpoint-2 (as after a kill) must pool the parts it kept (steps 1-2 and 3-4), not log steps 3-4 alone,
    # and draw epoch 1 in the same order as a run that never stopped (the loader counted its passes from 0).
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--max_train_samples", "8", "--checkpointing_steps", "1",
              "--validation_steps", "100", "--logging_steps", "1", *TINY]
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    run(["--output_dir", str(straight), "--max_train_steps", "8", *common])
    run(["--output_dir", str(cut), "--max_train_steps", "3", *common])
    kept = json.loads((cut / "checkpoint-2" / "history.json").read_text())
    assert [(h["epoch"], h["epoch_steps"]) for h in kept if "epoch_g_pixel" in h] == [(0, 1), (0, 1)], "each checkpoint keeps its part"
    run(["--output_dir", str(cut), "--max_train_steps", "8", "--resume_from_checkpoint", str(cut / "checkpoint-2"), *common])
    want = train_lib.epoch_means(json.loads((straight / "history.json").read_text()))
    got = train_lib.epoch_means(json.loads((cut / "history.json").read_text()))
    assert [(e, got[e]["steps"], got[e]["step"]) for e in got] == [(0, 4, 4), (1, 4, 8)]
    per_step = {h["step"]: h["g_pixel"] for h in json.loads((cut / "history.json").read_text()) if "g_pixel" in h and "epoch" in h and "lr" in h}
    assert got[0]["g_pixel"] == pytest.approx(np.mean([per_step[s] for s in range(1, 5)]), rel=1e-6), "the mean of exactly steps 1-4"
    for epoch in (0, 1):
        assert got[epoch]["g_pixel"] == pytest.approx(want[epoch]["g_pixel"], rel=1e-3)
        assert got[epoch]["d_loss"] == pytest.approx(want[epoch]["d_loss"], rel=1e-3)


def test_epoch_means_pool_the_parts_of_old_histories_by_their_steps():
    # Rows written before `epoch_steps` existed: a part counts the steps since the epoch's previous part.
    history = [{"step": 4, "epoch": 0, "epoch_g_pixel": 0.4, "epoch_d_loss": 1.0},
               {"step": 5, "epoch": 1, "epoch_g_pixel": 0.1, "epoch_d_loss": 0.5},
               {"step": 8, "epoch": 1, "epoch_g_pixel": 0.3, "epoch_d_loss": 0.7}]
    means = train_lib.epoch_means(history)
    assert means[0] == {"g_pixel": pytest.approx(0.4), "d_loss": pytest.approx(1.0), "steps": 4, "step": 4}
    assert means[1]["steps"] == 4 and means[1]["step"] == 8
    assert means[1]["g_pixel"] == pytest.approx((0.1 * 1 + 0.3 * 3) / 4)
    assert means[1]["d_loss"] == pytest.approx((0.5 * 1 + 0.7 * 3) / 4)


def test_epoch_means_pool_every_process_weighted_by_its_samples():
    # Two processes: the main one's 2 steps of 4 samples, the other's 2 steps of 2 (its share of an uneven batch).
    class TwoProcesses:
        num_processes, device = 2, torch.device("cpu")
        other = torch.tensor([0.5 * 2 + 0.7 * 2, 1.0 * 2 + 1.0 * 2, 4.0], dtype=torch.float64)

        def reduce(self, tensor, reduction):
            assert reduction == "sum"
            return tensor + self.other

        def log(self, values, step):
            pass

    history = []
    run_log = train_lib.RunLog(TwoProcesses(), history, every=100, adversarial=True)
    run_log.step(1, {"g_pixel": 0.1, "d_loss": 2.0}, last=False, samples=4)
    run_log.step(2, {"g_pixel": 0.3, "d_loss": 2.0}, last=False, samples=4)
    run_log.end_epoch(0, 2, "l1", steps_per_epoch=2)
    assert history[-1]["epoch_g_pixel"] == pytest.approx((0.1 * 4 + 0.3 * 4 + 0.5 * 2 + 0.7 * 2) / 12)
    assert history[-1]["epoch_d_loss"] == pytest.approx((2.0 * 8 + 1.0 * 4) / 12)
    assert history[-1]["epoch_steps"] == 2


@pytest.mark.parametrize("kind", ["constant", "cosine"])
def test_learning_rate_schedule_warms_up_then_holds_or_decays(kind):
    from training import train_script

    factors = [train_script.lr_factor(step, warmup=4, total=20, kind=kind) for step in range(21)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert max(factors) == pytest.approx(1.0)
    if kind == "constant":
        assert factors[4:] == pytest.approx([1.0] * 17)
    else:
        assert all(a >= b for a, b in zip(factors[4:], factors[5:])), "cosine never rises"
        assert factors[20] == pytest.approx(0.0, abs=1e-12)


def test_missing_dataset_is_a_clear_error(tmp_path):
    from colorgan_hf.errors import ColorGANError

    with pytest.raises(ColorGANError, match="not a saved pair set"):
        run(["--dataset_dir", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "o"), *TINY])


def test_a_folder_of_photos_as_dataset_dir_says_how_to_use_it(train_image_dir, tmp_path):
    from colorgan_hf.errors import ColorGANError

    with pytest.raises(ColorGANError, match=rf"--dataset_dir {train_image_dir}: not a saved pair set: it looks like a folder of "
                                            rf"photos;.*`colorgan build-dataset {train_image_dir} -o <pairs>`.*"
                                            rf"--train_data_dir {train_image_dir}"):
        run(["--dataset_dir", str(train_image_dir), "--output_dir", str(tmp_path / "o"), *TINY])


def test_crops_larger_than_the_pair_sets_images_get_one_warning_naming_both_sizes(train_pair_dir, tmp_path, caplog):
    common = ["--dataset_dir", str(train_pair_dir), "--max_train_steps", "1", "--validation_steps", "100", *TINY]
    with caplog.at_level("WARNING"):
        run(["--output_dir", str(tmp_path / "big"), "--resolution", "96", *common])
    upscaled = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert len(upscaled) == 1 and "--resolution 96" in upscaled[0] and "short side 64" in upscaled[0], upscaled
    caplog.clear()
    with caplog.at_level("WARNING"):
        run(["--output_dir", str(tmp_path / "fits"), "--resolution", "64", *common])
    assert "upscaled" not in caplog.text


def test_help_states_every_default_and_every_shipped_model():
    import re

    from colorgan_hf.registry import shipped_models

    text = subprocess.run([os.sys.executable, str(TRAIN_PY), "--help"], capture_output=True, text=True, check=True).stdout
    indented = "\n".join(line for line in text.split("options:", 1)[1].splitlines() if line.startswith(" "))  # no group titles
    entries = {block.split()[0].rstrip(","): " ".join(block.split()) for block in re.split(r"\n(?=  -)", indented)}
    args = train_script.parse_args(["--dataset_dir", "pairs"])
    defaults = {name: value for name, value in vars(args).items()  # the flags' own defaults: not the preset's values, which are named
                if f"--{name}" in entries and name not in (*train_lib.PRESETS[args.preset], "dataset_dir")
                and value is not None and value is not False}
    assert {"num_epochs", "output_dir", "checkpointing_steps", "seed", "channels_last", "perceptual_blocks"} <= set(defaults)
    for name, value in defaults.items():
        shown = " ".join(map(str, value)) if isinstance(value, list) else "on" if value is True else str(value)
        assert entries[f"--{name}"].endswith(f"(default: {shown})"), entries[f"--{name}"]
    for name in ("gen_base_channels", "disc_base_channels"):  # set by the presets, which the help names
        assert "(both presets: 32)" in entries[f"--{name}"]
    assert f"a shipped name ({', '.join(shipped_models())})" in entries["--init_generator"]
    assert set(shipped_models()) == {"default", "fast", "vivid", "paper"}


def test_two_process_ddp_on_cpu_saves_once(train_pair_dir, tmp_path):
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", str(TRAIN_PY), "--dataset_dir", str(train_pair_dir), "--resolution", "32",
           "--output_dir", str(out), "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "2",
           "--logging_steps", "1", "--adv_weight", "1", *TINY,  # both networks under DDP
           "--max_eval_samples", "3"]  # 3 test pairs over 2 processes of batch 2: the last batch is evened out with a repeat
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("saved the generator to") == 1, "only the main process saves the final model"
    for line in ("training pairs,", f"saved {out / 'checkpoint-2'}", "epoch 0: generator l1"):
        assert log.count(line) == 1, f"{line!r} is logged by the main process alone"
    # The epoch's mean is over both processes' samples: not the main process's steps alone, which the step rows are.
    history = json.loads((out / "history.json").read_text())
    main_steps = [h["g_pixel"] for h in history if "g_total" in h]
    epoch = next(h for h in history if "epoch_g_pixel" in h)
    assert len(main_steps) == 2 and epoch["epoch_steps"] == 2
    assert epoch["epoch_g_pixel"] != pytest.approx(np.mean(main_steps), rel=1e-6)
    test = next(h for h in history if "test_pixel" in h)
    assert test["test_pairs"] == 3, "each test pair is scored once: the repeat that evens out the processes is not"
    assert test["test_pixel"] == pytest.approx(np.mean(test["test_pixel_per_batch"]), rel=1e-6)  # one step of both
    assert ColorGenerator.from_pretrained(out / "generator").architecture == "unet"
    assert (out / "checkpoint-2" / "random_states_1.pkl").exists(), "the second process took part in the checkpoint"


def test_init_generator_fine_tunes_given_weights_and_refuses_a_mismatch(train_pair_dir, tiny_unet, tiny_paper, tmp_path):
    from colorgan_hf.errors import ColorGANError

    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)
    out = tmp_path / "tuned"
    run(["--output_dir", str(out), "--dataset_dir", str(train_pair_dir), "--resolution", "32", "--init_generator", str(start),
         "--architecture", "unet", "--max_train_steps", "2", "--validation_steps", "100", "--checkpointing_steps", "100", *TINY])
    tuned = ColorGenerator.from_pretrained(out / "generator")
    assert json.loads((out / "generator" / "config.json").read_text())["depth"] == 2, "the architecture comes from the starting weights"
    before, after = load_file(start / "model.safetensors"), load_file(out / "generator" / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the weights were trained"

    paper = tmp_path / "paper"
    tiny_paper.save_pretrained(paper)
    with pytest.raises(ColorGANError, match="cannot start a default run"):
        run(["--output_dir", str(tmp_path / "bad"), "--dataset_dir", str(train_pair_dir), "--resolution", "32",
             "--init_generator", str(paper), "--max_train_steps", "1", *TINY])


def test_init_generator_names_the_weights_it_loads_and_the_flags_it_overrides(train_pair_dir, tmp_path, caplog):
    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--init_generator", str(start), "--max_train_steps", "1",
              "--validation_steps", "100", *TINY]
    with caplog.at_level("INFO"):
        run(["--output_dir", str(tmp_path / "wide"), *common, "--gen_base_channels", "16"])  # the last --gen_base_channels wins
    assert f"loaded every weight of {start}: a unet generator (base_channels 8, depth 2)" in caplog.text
    overridden = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "overrides" in r.getMessage()]
    assert overridden == [f"--init_generator {start} overrides --gen_base_channels 16 (its width is 8): its weights are trained as saved"]
    assert json.loads((tmp_path / "wide" / "generator" / "config.json").read_text())["base_channels"] == 8
    caplog.clear()
    with caplog.at_level("INFO"):
        run(["--output_dir", str(tmp_path / "same"), *common])  # TINY's width 8 is the start's own: nothing overridden
    assert "loaded every weight" in caplog.text and "overrides" not in caplog.text


@pytest.mark.parametrize("options", [
    dict(architecture="unet_pair", base_channels=8, second_base_channels=12, depth=2, mix=0.5),
    dict(architecture="semantic_bins_pair", base_channels=8, depth=2, bin_size=20, vividness=0.5, second_base_channels=12, mix=0.5),
])
def test_a_pair_fine_tunes_whole_under_the_default_recipe(options, train_pair_dir, tmp_path):
    # The shipped default is a pair: `--init_generator default` (the README's fine-tuning command) trains both members
    # (a semantic_bins_pair's encoder stays frozen).
    start = tmp_path / "start"
    ColorGenerator(**options).save_pretrained(start)
    out = tmp_path / "tuned"
    run(["--output_dir", str(out), "--dataset_dir", str(train_pair_dir), "--resolution", "32", "--init_generator", str(start),
         "--max_train_steps", "2", "--validation_steps", "100", "--checkpointing_steps", "100", *TINY])
    config = json.loads((out / "generator" / "config.json").read_text())
    assert config == options
    before, after = load_file(start / "model.safetensors"), load_file(out / "generator" / "model.safetensors")
    assert before.keys() == after.keys()
    for member in ("net.first.", "net.second."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(member)), f"{member} was not trained"
    assert all(torch.equal(before[k], after[k]) for k in before if ".encoder." in k), "the frozen encoder is saved as it was"


@pytest.mark.parametrize("power, expected", [(0.0, {"a": 0.5, "b": 0.5}), (0.5, {"a": 30 / 40, "b": 10 / 40}), (1.0, {"a": 0.9, "b": 0.1})])
def test_source_balance_power_sets_each_sources_share(power, expected):
    sources = ["a"] * 900 + ["b"] * 100
    weights = train_lib.source_sample_weights(sources, power)
    total = sum(weights)
    share = {name: sum(w for w, s in zip(weights, sources) if s == name) / total for name in ("a", "b")}
    assert share == pytest.approx(expected)


def test_rebalance_preview_prints_the_weighted_colour_means(train_pair_dir, capsys):
    import rebalance_preview

    rows = rebalance_preview.main(rebalance_preview.parse_args(["--dataset_dir", str(train_pair_dir), "--lambdas", "0.5", "1.0",
                                                                "--batches", "2", "--batch_size", "4"]))
    assert [r["weighting"] for r in rows] == ["none", "lambda 0.5", "lambda 1.0"]
    none, strong, uniform = rows
    assert uniform["mean_chroma"] == pytest.approx(none["mean_chroma"], rel=1e-4), "lambda 1 is no re-balancing"
    assert abs(strong["mean_chroma"] - none["mean_chroma"]) > 0.1, "re-balancing at 0.5 re-weighs the colours"
    assert "lambda 0.5" in capsys.readouterr().out


def test_init_generator_starts_a_new_head_on_a_trained_trunk(train_pair_dir, tmp_path):
    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)
    out = tmp_path / "bins"
    run(["--output_dir", str(out), "--dataset_dir", str(train_pair_dir), "--resolution", "32", "--init_generator", str(start),
         "--architecture", "unet_bins", "--class_weight", "1", "--max_train_steps", "1", "--learning_rate", "1e-12", "--validation_steps", "100", *TINY])
    config = json.loads((out / "generator" / "config.json").read_text())
    assert config["architecture"] == "unet_bins" and config["depth"] == 2, "the trunk's sizes come from the starting weights"
    before, after = load_file(start / "model.safetensors"), load_file(out / "generator" / "model.safetensors")
    shared = [k for k in after if k in before and before[k].shape == after[k].shape and "running" not in k and "num_batches" not in k]
    assert "net.stem.0.weight" in shared and "net.head.weight" not in shared
    for name in shared:
        torch.testing.assert_close(after[name], before[name], atol=1e-6, rtol=0, msg=f"{name} was not taken from the trunk")


def test_semantic_bins_starts_from_a_unet_trunk_with_an_encoder_file(train_pair_dir, tmp_path):
    from colorgan_hf.encoders import MobileNetV2Features
    from safetensors.torch import save_file

    encoder = tmp_path / "encoder.safetensors"
    torch.manual_seed(4)
    save_file({k: v.contiguous() for k, v in MobileNetV2Features().state_dict().items()}, str(encoder))
    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--architecture", "semantic_bins", "--class_weight", "1",
              "--pixel_weight", "10", "--max_train_steps", "1", "--validation_steps", "100", "--checkpointing_steps", "100", *TINY]
    out = tmp_path / "sb"
    run(["--output_dir", str(out), "--init_generator", str(start), "--init_encoder", str(encoder), *common])
    config = json.loads((out / "generator" / "config.json").read_text())
    assert config["architecture"] == "semantic_bins" and config["depth"] == 2
    trained, before, frozen = (load_file(p) for p in (out / "generator" / "model.safetensors", start / "model.safetensors", encoder))
    assert all(torch.equal(trained[f"net.encoder.{k}"], v) for k, v in frozen.items()), "the encoder is saved as loaded"
    assert trained["net.head.weight"].shape[0] > 2 and "net.head.0.weight" in before, "a bins head on the unet's trunk"
    again = tmp_path / "again"
    run(["--output_dir", str(again), "--init_generator", str(out / "generator"), *common])  # it carries its encoder
    assert torch.equal(load_file(again / "generator" / "model.safetensors")["net.encoder.top.0.weight"], frozen["top.0.weight"])


def test_paper_report_puts_our_tables_beside_the_papers(train_image_dir, tmp_path):
    # A tiny paper run on a 120x120 pair set, stopped, finished with zero more steps, then reported.
    from colorgan_hf.data import build_pair_dataset
    from training import ROOT
    import importlib.util

    pairs, _ = build_pair_dataset([str(train_image_dir)], size=120, resize_mode="square", test_fraction=0.25, seed=0)
    pairs.save_to_disk(str(tmp_path / "pairs"))
    out = tmp_path / "run"
    common = ["--preset", "paper", "--dataset_dir", str(tmp_path / "pairs"), "--output_dir", str(out), "--max_train_samples", "4",
              "--checkpointing_steps", "2", "--validation_steps", "100", *TINY]
    run([*common, "--max_train_steps", "4"])
    spec = importlib.util.spec_from_file_location("paper_report", ROOT / "train" / "paper_report.py")
    report_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report_module)
    report = report_module.main(report_module.parse_args(["--run", str(out), "--data", str(tmp_path / "pairs"), "--batch_size", "2",
                                                          "-o", str(tmp_path / "report" / "paper")]))
    assert report["epochs_reached"] == 2
    ours = {row["epoch"]: row["ours"] for row in report["table1"]}
    assert ours[1]["generator_mse"] > 0 and ours[2]["discriminator_bce"] > 0
    assert ours[20] is None and ours[1000] is None, "epochs the run never reached are marked, not invented"
    scored = report["table2"]["generators"]["ours"]
    assert len(scored["per_batch"]) == 2 and report["table2"]["test_photos"] == 3
    assert 0 < scored["weighted_mean"] < 1
    text = (tmp_path / "report" / "paper.md").read_text()
    assert "0.00281" in text and "not reached" in text
    assert (tmp_path / "report" / "paper_curves.png").stat().st_size > 0
    # Two generators side by side in Table 2 (the shipped one beside the run's last), each its own column.
    shorter = tmp_path / "shorter"
    run([*[a if a != str(out) else str(shorter) for a in common], "--max_train_steps", "2"])
    again = report_module.main(report_module.parse_args([
        "--run", str(out), "--data", str(tmp_path / "pairs"), "--batch_size", "2", "--epochs", "1",
        "--generator", f"step 4={out / 'generator'}", "--generator", f"step 2={shorter / 'generator'}",
        "-o", str(tmp_path / "report" / "two")]))
    assert list(again["table2"]["generators"]) == ["step 4", "step 2"]
    assert again["table2"]["generators"]["step 4"]["weighted_mean"] == pytest.approx(scored["weighted_mean"])
    assert again["table2"]["generators"]["step 2"]["weighted_mean"] != pytest.approx(scored["weighted_mean"])
    header = (tmp_path / "report" / "two.md").read_text()
    assert "| paper: MSE | ours, step 4: MSE | ours, step 2: MSE |" in header
    assert [row["epoch"] for row in again["table1"] if row["ours"]] == [1, 2]


def test_without_the_adversarial_term_nothing_speaks_of_a_discriminator(train_pair_dir, tmp_path, caplog, recwarn):
    # --adv_weight 0 (a NoGAN run): no d= in the bar, no "discriminator BCE" per epoch, no untrained discriminator/ saved,
    # no schedule for the optimizer that never steps (torch warns of a scheduler stepped before its optimizer);
    # the sample grid names its columns in a header above the tiles.
    from PIL import Image

    out = tmp_path / "nogan"
    with caplog.at_level("INFO"):
        run(["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--adv_weight", "0", "--output_dir", str(out),
             "--max_train_samples", "4", "--max_train_steps", "4", "--checkpointing_steps", "4", "--validation_steps", "4", *TINY])
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)], [str(w.message) for w in recwarn]
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert epoch_lines and not any("discriminator" in line for line in epoch_lines)
    assert (out / "generator").is_dir() and not (out / "discriminator").exists()
    history = json.loads((out / "history.json").read_text())
    assert all(h["d_loss"] == 0 for h in history if "d_loss" in h)
    grid = np.asarray(Image.open(out / "samples" / "step-0000004.png").convert("L"))
    header, tiles = grid[:14], grid[14:]
    assert header.shape[1] == 3 * 32 and tiles.shape[0] % 32 == 0
    assert (header < 128).any() and (header >= 250).mean() > 0.5, "dark column names on a white header"


def test_preloaded_batches_are_crops_of_the_pairs_seeded_by_epoch_and_shared_out_by_process(train_pair_dir):
    import datasets

    split = datasets.load_from_disk(str(train_pair_dir))["train"]
    loader = train_lib.DeviceBatches(split, resolution=32, batch_size=3, seed=0)
    assert loader.data.dtype == torch.uint8 and loader.data.shape[1:] == (4, 64, 64)  # RGB + gray, central squares
    assert len(loader) == len(split) // 3
    batches = list(loader)
    assert len(batches) == len(loader)
    for batch in batches:
        assert batch["rgb"].shape == (3, 3, 32, 32) and batch["gray"].shape == (3, 1, 32, 32)
        # Each crop (flipped or not) of both halves of a pair comes from the same window: the gray is
        # the luma of the colour, so a crop of one and a mismatched crop of the other would not agree.
        luma = (batch["rgb"] * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
        assert (luma - batch["gray"]).abs().mean() < 0.02
    # Every crop is a window of a stored image, as it is or mirrored.
    for image in batches[0]["rgb"]:
        image = (image * 255).round().to(torch.uint8)
        windows = [s[:3, t:t + 32, l:l + 32] for s in loader.data for t in range(33) for l in range(33)]
        assert any(image.equal(w) or image.equal(w.flip(-1)) for w in windows)
    again = list(train_lib.DeviceBatches(split, resolution=32, batch_size=3, seed=0))
    assert all(a["rgb"].equal(b["rgb"]) for a, b in zip(batches, again)), "the same (seed, epoch) gives the same batches"
    loader.epoch = 1
    assert not all(a["rgb"].equal(b["rgb"]) for a, b in zip(batches, loader)), "another epoch shuffles and crops anew"
    assert [b["rgb"] for b in loader.batches(skip=1)][0].equal(list(loader)[1]["rgb"]), "a resumed epoch skips into the same batches"
    # Two processes split every epoch between them: disjoint images, the same number of steps
    # (noise images, so that no two rows are mirrors of each other as the test photos are).
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(9)]
    split = datasets.Dataset.from_dict({"color": noise, "gray": [im.convert("L") for im in noise]},
                                       features=datasets.Features({"color": datasets.Image(), "gray": datasets.Image()}))
    halves = [train_lib.DeviceBatches(split, resolution=32, batch_size=2, seed=0, process_index=i, num_processes=2) for i in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 2
    images = [[img for b in h for img in b["rgb"]] for h in halves]
    originals = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in noise]

    def row_of(img):
        img = (img * 255).round().to(torch.uint8)
        return next(i for i, o in enumerate(originals) for t in range(9) for l in range(9)
                    if img.equal(o[:, t:t + 32, l:l + 32]) or img.equal(o[:, t:t + 32, l:l + 32].flip(-1)))

    rows = [{row_of(img) for img in part} for part in images]
    assert len(rows[0]) == len(rows[1]) == 4 and not rows[0] & rows[1]


def test_preload_data_trains_and_resumes_like_the_loader(train_pair_dir, tmp_path):
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--preload_data", "--checkpointing_steps", "2",
              "--validation_steps", "100", *TINY]
    straight = tmp_path / "straight"
    assert run(["--output_dir", str(straight), "--max_train_steps", "4", *common])["global_step"] == 4
    stopped = tmp_path / "stopped"
    run(["--output_dir", str(stopped), "--max_train_steps", "2", *common])
    run(["--output_dir", str(stopped), "--max_train_steps", "4", "--resume_from_checkpoint", "latest", *common])
    a = load_file(straight / "generator" / "model.safetensors")
    b = load_file(stopped / "generator" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=f"{name} differs after resuming")


def test_unet_semantic_trains_from_a_unet_with_its_encoder_file_and_keeps_the_encoder(train_pair_dir, tmp_path):
    from colorgan_hf.encoders import MobileNetV2Features
    from colorgan_hf.errors import ColorGANError
    from safetensors.torch import save_file

    encoder = tmp_path / "encoder.safetensors"
    torch.manual_seed(3)
    save_file({k: v.contiguous() for k, v in MobileNetV2Features().state_dict().items()}, str(encoder))
    start = tmp_path / "start"
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(start)
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--architecture", "unet_semantic", "--max_train_steps", "2",
              "--validation_steps", "100", "--checkpointing_steps", "100", *TINY]
    with pytest.raises(ColorGANError, match="needs its encoder: give --init_encoder"):
        run(["--output_dir", str(tmp_path / "no_encoder"), "--init_generator", str(start), *common])
    out = tmp_path / "sem"
    run(["--output_dir", str(out), "--init_generator", str(start), "--init_encoder", str(encoder), *common])
    config = json.loads((out / "generator" / "config.json").read_text())
    assert config == {"architecture": "unet_semantic", "base_channels": 8, "depth": 2}
    trained, before, frozen = (load_file(p) for p in (out / "generator" / "model.safetensors", start / "model.safetensors", encoder))
    assert all(torch.equal(trained[f"net.encoder.{k}"], v) for k, v in frozen.items()), "the encoder is saved as loaded"
    assert any(not torch.equal(trained[k], v) for k, v in before.items()), "the trunk trained"
    # A unet_semantic start carries its encoder: no file needed to go on.
    again = tmp_path / "again"
    run(["--output_dir", str(again), "--init_generator", str(out / "generator"), *common])
    assert torch.equal(load_file(again / "generator" / "model.safetensors")["net.encoder.top.0.weight"], frozen["top.0.weight"])
    with pytest.raises(ColorGANError, match="--init_encoder is for generators with a semantic encoder .*, not unet"):
        run(["--output_dir", str(tmp_path / "wrong"), "--dataset_dir", str(train_pair_dir), "--resolution", "32", "--init_encoder",
             str(encoder), "--max_train_steps", "1", *TINY])


def test_boost_chroma_scales_chroma_keeps_hue_and_stays_in_range():
    ab = torch.rand(3, 2, 5, 7) * 2 - 1  # (B, 2, H, W), a*b* in [-1, 1]
    boosted = train_lib.boost_chroma(ab, 1.2)
    assert boosted.abs().max() <= 1.0 + 1e-6
    hue = torch.atan2(ab[:, 1], ab[:, 0])
    assert torch.allclose(torch.atan2(boosted[:, 1], boosted[:, 0]), hue, atol=1e-5), "the hue is kept"
    ratio = boosted.norm(dim=1) / ab.norm(dim=1)
    unclipped = ab.abs().amax(dim=1) * 1.2 <= 1.0
    assert unclipped.any() and (~unclipped).any()
    assert torch.allclose(ratio[unclipped], torch.full_like(ratio[unclipped], 1.2), atol=1e-5)
    assert (ratio[~unclipped] >= 1.0 - 1e-6).all() and (ratio[~unclipped] < 1.2).all(), "capped at the edge of the range"
    assert train_lib.boost_chroma(ab, 1.0) is ab


def test_colourfulness_shortfall_counts_only_a_duller_prediction_and_pushes_it_outwards():
    target = torch.zeros(2, 2, 4, 4)
    target[:, 0] = 0.3  # chroma 0.3 everywhere
    dull = torch.full((2, 2, 4, 4), 0.1, requires_grad=True)  # chroma 0.1 * sqrt(2)
    loss = train_lib.colourfulness_shortfall(dull, target)
    assert loss.item() == pytest.approx(0.3 - 0.1 * 2 ** 0.5, abs=1e-4)
    loss.backward()
    assert (dull.grad < 0).all(), "the gradient raises the chroma"
    vivid = torch.full((2, 2, 4, 4), 0.5)
    assert train_lib.colourfulness_shortfall(vivid, target).item() == 0.0
    assert torch.isfinite(torch.autograd.functional.jacobian(
        lambda x: train_lib.colourfulness_shortfall(x, target), torch.zeros(1, 2, 2, 2))).all(), "no NaN at gray"


def test_target_saturation_and_colourfulness_term_train_and_are_logged(train_pair_dir, tmp_path):
    out = tmp_path / "run"
    run(["--output_dir", str(out), "--dataset_dir", str(train_pair_dir), "--resolution", "32", "--max_train_steps", "2",
         "--logging_steps", "1", "--validation_steps", "100", "--checkpointing_steps", "100", "--target_saturation", "1.2",
         "--colourfulness_weight", "50", *TINY])
    history = json.loads((out / "history.json").read_text())
    logged = [h for h in history if "g_colour" in h]
    assert len(logged) == 2 and all(np.isfinite(h["g_colour"]) for h in logged)
    assert any(h["g_colour"] > 0 for h in logged), "an untrained generator is duller than its targets"
    assert all(h["g_total"] >= 50 * h["g_colour"] for h in logged), "the term is in the total at its weight"


def _rgb_encoder_file(tmp_path) -> str:
    from colorgan_hf.encoders import MobileNetV2Features
    from safetensors.torch import save_file

    path = tmp_path / "rgb_encoder.safetensors"
    torch.manual_seed(5)
    net = MobileNetV2Features(in_channels=3)
    for module in net.modules():  # batch-norm statistics that are not the identity, as a trained net's
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return str(path)


def test_perceptual_loss_is_zero_at_the_truth_and_trains_only_the_output(tmp_path):
    loss = train_lib.PerceptualLoss(_rgb_encoder_file(tmp_path), blocks=(9, 2))
    assert loss.blocks == (2, 9)
    loss.train()
    assert not loss.encoder.training, "the frozen encoder keeps its statistics"
    truth = torch.rand(2, 3, 32, 32)
    assert loss(truth, truth).item() == 0.0
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(output, truth)
    assert value.item() > 0
    value.backward()
    assert output.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.encoder.parameters()), "the encoder does not train"
    from colorgan_hf.errors import ColorGANError

    with pytest.raises(ColorGANError, match="among 0-16, got \\[17\\]"):
        train_lib.PerceptualLoss(_rgb_encoder_file(tmp_path), blocks=(17,))


def test_image_to_rgb_puts_the_lightness_back_under_the_predicted_ab():
    from colorgan_hf.color import rgb_to_lab

    rgb = torch.rand(2, 3, 8, 8)
    g_net = ColorGenerator(architecture="unet", base_channels=8, depth=2).net
    gen_input, truth = g_net.training_pair({"rgb": rgb, "gray": rgb.mean(dim=1, keepdim=True)})
    assert torch.allclose(g_net.image_to_rgb(gen_input, truth), rgb, atol=2e-3)
    paper = ColorGenerator(architecture="paper").net
    assert torch.equal(paper.image_to_rgb(rgb[:, :1], rgb), rgb), "an RGB generator's image is RGB already"
    gray = g_net.image_to_rgb(gen_input, torch.zeros_like(truth))
    assert torch.allclose(rgb_to_lab(gray)[:, 0], rgb_to_lab(rgb)[:, 0], atol=0.05) and gray.std(dim=1).max() < 2e-3


def test_perceptual_term_trains_and_is_logged_and_needs_its_encoder(train_pair_dir, tmp_path):
    out = tmp_path / "run"
    encoder = _rgb_encoder_file(tmp_path)
    common = ["--dataset_dir", str(train_pair_dir), "--resolution", "32", "--max_train_steps", "2", "--logging_steps", "1",
              "--validation_steps", "100", "--checkpointing_steps", "100", *TINY]
    run(["--output_dir", str(out), "--perceptual_weight", "10", "--perceptual_encoder", encoder, "--perceptual_blocks", "2", "5", *common])
    history = json.loads((out / "history.json").read_text())
    logged = [h for h in history if "g_perceptual" in h]
    assert len(logged) == 2 and all(h["g_perceptual"] > 0 for h in logged)
    assert all(h["g_total"] >= 10 * h["g_perceptual"] for h in logged), "the term is in the total at its weight"
    lone_or_negative = (["--perceptual_weight", "10"], ["--perceptual_encoder", encoder],
                        ["--perceptual_weight", "-1", "--perceptual_encoder", encoder])
    for flags in lone_or_negative:
        with pytest.raises(SystemExit):
            train_script.parse_args(["--dataset_dir", str(train_pair_dir), *flags])


def test_colour_levers_are_refused_for_an_rgb_generator_and_out_of_range(train_image_dir, train_pair_dir, tmp_path):
    from colorgan_hf.errors import ColorGANError

    with pytest.raises(ColorGANError, match="predicts RGB"):
        run(["--preset", "paper", "--output_dir", str(tmp_path / "paper"), "--train_data_dir", str(train_image_dir),
             "--max_train_steps", "1", "--target_saturation", "1.2", *TINY])
    for flag, value in (("--target_saturation", "0"), ("--target_saturation", "nan"), ("--colourfulness_weight", "-1")):
        with pytest.raises(SystemExit):
            train_script.parse_args(["--dataset_dir", str(train_pair_dir), flag, value])

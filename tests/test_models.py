import json

import pytest
import training  # noqa: F401  (puts train/ on the path)
import torch

from colorgan_hf import ColorDiscriminator, ColorGenerator, GANLoss
from colorgan_hf.color import AB_SCALE

GEN_CONFIGS = {
    "unet": (dict(architecture="unet", base_channels=8, depth=3), (2, 1, 32, 48), (2, 2, 32, 48), (-1.0, 1.0)),
    "paper": (dict(architecture="paper", base_channels=4), (2, 1, 120, 120), (2, 3, 120, 120), (0.0, 1.0)),
    "unet_pair": (dict(architecture="unet_pair", base_channels=8, second_base_channels=12, depth=3, mix=0.65), (2, 1, 32, 48),
                  (2, 2, 32, 48), (-1.0, 1.0)),
    "unet_semantic": (dict(architecture="unet_semantic", base_channels=8, depth=3), (2, 1, 32, 48), (2, 2, 32, 48), (-1.0, 1.0)),
    "semantic_pair": (dict(architecture="semantic_pair", base_channels=8, second_base_channels=12, depth=3, mix=0.5), (2, 1, 32, 48),
                      (2, 2, 32, 48), (-1.0, 1.0)),
}
DISC_CONFIGS = {
    "unet": (dict(architecture="unet", base_channels=8), (2, 3, 64, 64)),
    "paper": (dict(architecture="paper", base_channels=4), (2, 3, 120, 120)),
}


@pytest.mark.parametrize("arch", sorted(GEN_CONFIGS))
def test_generator_shapes_ranges_and_gradients(arch):
    kwargs, in_shape, out_shape, (low, high) = GEN_CONFIGS[arch]
    model = ColorGenerator(**kwargs)
    if arch in ("unet_semantic", "semantic_pair"):
        # Its projection's last layer starts at zero (the net starts as its unet), which passes no gradient
        # back to the layer before it until the first step: take that step's state.
        semantic = model.net.semantic if arch == "unet_semantic" else model.net.first.semantic
        torch.nn.init.normal_(semantic[-1].weight, std=0.01)
    x = torch.rand(in_shape) if arch == "paper" else torch.rand(in_shape) * 2 - 1
    y = model(x)
    assert y.shape == out_shape
    assert torch.isfinite(y).all()
    assert y.min() >= low and y.max() <= high
    y.square().mean().backward()
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    missing = [name for name, p in trained if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without a gradient: {missing}"
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    # Only a pretrained encoder is frozen, and it gets no gradient at all.
    assert all(".encoder." in name for name in frozen) and bool(frozen) == ("semantic" in arch)
    assert all(p.grad is None for name, p in model.named_parameters() if name in frozen)


@pytest.mark.parametrize("arch", sorted(DISC_CONFIGS))
def test_discriminator_shapes_and_gradients(arch):
    kwargs, in_shape = DISC_CONFIGS[arch]
    model = ColorDiscriminator(**kwargs)
    logits = model(torch.rand(in_shape))
    assert logits.shape[0] == in_shape[0]
    if arch == "paper":
        assert logits.shape == (2,)
    else:
        assert logits.ndim == 4 and logits.shape[1] == 1, "PatchGAN gives a map of logits"
    prob = model.probability(torch.rand(in_shape))
    assert torch.all((prob >= 0) & (prob <= 1))
    GANLoss(label_noise=0.1)(logits, True).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without a gradient: {missing}"


@pytest.mark.parametrize("arch", ["unet", "paper", "unet_pair", "unet_semantic"])
def test_predict_ab_speaks_lab_for_every_architecture(arch):
    kwargs, in_shape, _, _ = GEN_CONFIGS[arch]
    model = ColorGenerator(**kwargs).eval()
    l_channel = torch.rand(in_shape) * 100
    ab = model.predict_ab(l_channel)
    assert ab.shape == (in_shape[0], 2, *in_shape[2:])
    assert torch.isfinite(ab).all() and ab.abs().max() <= 128


def test_unet_runs_at_any_multiple_of_its_stride():
    model = ColorGenerator(architecture="unet", base_channels=8, depth=3).eval()
    for h, w in [(8, 8), (16, 40), (64, 24)]:
        assert model(torch.zeros(1, 1, h, w)).shape == (1, 2, h, w)
    assert model.stride == 8 and model.input_size is None


@pytest.mark.parametrize("arch", ["unet", "paper", "unet_pair", "unet_semantic"])
def test_save_pretrained_round_trip_with_safetensors_only(tmp_path, arch):
    kwargs, in_shape, _, _ = GEN_CONFIGS[arch]
    model = ColorGenerator(**kwargs).eval()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == arch and config["base_channels"] == kwargs["base_channels"]
    loaded = ColorGenerator.from_pretrained(tmp_path).eval()
    assert loaded.architecture == arch
    x = torch.rand(in_shape)
    torch.testing.assert_close(loaded(x), model(x))


def test_discriminator_round_trip(tmp_path):
    model = ColorDiscriminator(architecture="paper", base_channels=4).eval()
    model.save_pretrained(tmp_path)
    loaded = ColorDiscriminator.from_pretrained(tmp_path).eval()
    x = torch.rand(1, 3, 120, 120)
    torch.testing.assert_close(loaded(x), model(x))


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        ColorGenerator(architecture="transformer")
    with pytest.raises(ValueError, match="unknown architecture"):
        ColorDiscriminator(architecture="transformer")


def test_gan_loss_noisy_labels_stay_in_range():
    logits = torch.zeros(1000)
    clean_real = GANLoss()(logits, True)
    noisy_real = GANLoss(label_noise=0.2)(logits, True)
    # With logits 0 the BCE is log 2 for every target: noise changes targets, not this value.
    torch.testing.assert_close(clean_real, noisy_real)
    confident = torch.full((1000,), 10.0)
    assert GANLoss(label_noise=0.2)(confident, True) > GANLoss()(confident, True)
    with pytest.raises(ValueError):
        GANLoss(label_noise=0.7)


def test_only_safetensors_are_loaded(tmp_path):
    from colorgan_hf import ModelLoadError

    model = ColorGenerator(architecture="unet", base_channels=8, depth=3)
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        ColorGenerator.from_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    from colorgan_hf import ModelLoadError

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["base_channels"] = 16
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="do not match"):
        ColorGenerator.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mystery_option": 3}, "unknown config keys"),
        ({"base_channels": "32"}, "must be int"),
        ({"depth": 2.5}, "must be int"),
        ({"architecture": "transformer"}, "unknown architecture"),
    ],
)
def test_bad_configs_are_refused_before_weights_are_read(tmp_path, change, message):
    from colorgan_hf import ModelLoadError

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(change)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"not read: the config fails first")
    with pytest.raises(ModelLoadError, match=message):
        ColorGenerator.from_pretrained(tmp_path)


# ---------------------------------------------------------------- a config alone must not exhaust memory (issue 16, item 2)

ATTACK_SCRIPT = r"""
import json, resource, shutil, sys, time
from pathlib import Path
from colorgan_hf import ColorGenerator
from colorgan_hf.registry import WEIGHTS_DIR

root, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
results = {}
for name, (shipped, config) in cases.items():
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    shutil.copy(WEIGHTS_DIR / shipped / "model.safetensors", folder / "model.safetensors")  # the genuine weights
    start = time.perf_counter()
    try:
        ColorGenerator.from_pretrained(folder)
        outcome = "loaded"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    results[name] = {"outcome": outcome, "seconds": time.perf_counter() - start}
# VmHWM is this process's own peak: ru_maxrss would carry the forking pytest's size across exec.
status = Path("/proc/self/status")
hwm = [line for line in status.read_text().splitlines() if line.startswith("VmHWM")] if status.exists() else []
results["peak_rss_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(results))
"""

# Each attack of the issue: (shipped weights beside it, config.json, what the error says).
CONFIG_ATTACKS = {
    "unet_base_channels_20000": ("fast", {"architecture": "unet", "base_channels": 20000, "depth": 4}, "outside the supported range"),
    "unet_depth_3000": ("fast", {"architecture": "unet", "base_channels": 32, "depth": 3000}, "outside the supported range"),
    "unet_base_channels_1e5": ("fast", {"architecture": "unet", "base_channels": 1e5, "depth": 4}, "must be int"),
    "paper_image_size_2000": ("paper", {"architecture": "paper", "base_channels": 32, "image_size": 2000}, "outside the supported range"),
    # Inside every bound, yet a 619 M-parameter (2.5 GB) network: refused from the weights' header, before it is built.
    "in_bounds_unet_256x7": ("fast", {"architecture": "unet", "base_channels": 256, "depth": 7}, "weights do not match config.json"),
    "pair_mix_2": ("default", {"architecture": "unet_pair", "base_channels": 32, "second_base_channels": 48, "depth": 4, "mix": 2.0},
                   "outside the supported range"),
    "in_bounds_pair_256x7": ("default", {"architecture": "unet_pair", "base_channels": 256, "second_base_channels": 256, "depth": 7,
                                         "mix": 0.5}, "weights do not match config.json"),
    "in_bounds_paper_256": ("paper", {"architecture": "paper", "base_channels": 256, "image_size": 120}, "weights do not match config.json"),
}


@pytest.fixture(scope="module")
def config_attacks(tmp_path_factory):
    """All the attacks in one fresh process: its peak memory covers every one of them."""
    import subprocess
    import sys

    cases = {name: (shipped, config) for name, (shipped, config, _) in CONFIG_ATTACKS.items()}
    proc = subprocess.run([sys.executable, "-c", ATTACK_SCRIPT, str(tmp_path_factory.mktemp("attacks")), json.dumps(cases)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(CONFIG_ATTACKS))
def test_a_config_alone_cannot_exhaust_memory(config_attacks, name):
    outcome = config_attacks[name]["outcome"]
    assert outcome.startswith("ModelLoadError: ") and CONFIG_ATTACKS[name][2] in outcome, outcome
    assert config_attacks[name]["seconds"] < 10, "refused before anything large is built"


def test_config_attacks_stay_small(config_attacks):
    # A fresh process with torch imported is about 0.3 GB; building the in-bounds 256x7 U-Net alone would take 2.5 GB.
    assert config_attacks["peak_rss_mb"] < 1000, config_attacks


def test_weight_shapes_are_checked_from_the_header_before_anything_is_built(tmp_path, monkeypatch):
    from colorgan_hf import ModelLoadError
    from colorgan_hf import hub

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(base_channels=16, depth=4)
    (tmp_path / "config.json").write_text(json.dumps(config))
    read = []
    monkeypatch.setattr(hub, "load_safetensors", lambda *a, **k: read.append(a) or {})
    with pytest.raises(ModelLoadError, match=r"weights do not match config.json .*missing.*of another shape"):
        ColorGenerator.from_pretrained(tmp_path)
    assert not read, "no weight was read"


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_weights_are_refused(tmp_path, bad):
    from safetensors.torch import load_file, save_file

    from colorgan_hf import ModelLoadError

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    name = sorted(k for k, v in state.items() if v.is_floating_point())[-1]
    state[name].view(-1)[0] = float(bad)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match=rf"weight '{name}' holds NaN or infinite values"):
        ColorGenerator.from_pretrained(tmp_path)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.bool])
def test_weights_that_are_not_floating_point_are_refused(tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    from colorgan_hf import ModelLoadError

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    name = "net.head.0.weight"
    state[name] = torch.ones_like(state[name], dtype=dtype)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match=rf"weight '{name}' is .*, not floating point"):
        ColorGenerator.from_pretrained(tmp_path)


def test_truncated_weights_are_a_clear_error(tmp_path):
    from colorgan_hf import ModelLoadError

    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        ColorGenerator.from_pretrained(tmp_path)


def test_every_config_field_is_bounded():
    import typing

    from colorgan_hf.models import DISCRIMINATORS, GENERATORS

    for net in [*GENERATORS.values(), *DISCRIMINATORS.values()]:
        fields = set(typing.get_type_hints(net.__init__)) - {"return"}
        assert fields == set(net.BOUNDS), f"{net.__name__}: every config field has a range"


def test_unet_bins_predicts_a_distribution_its_vividness_sharpens_and_round_trips(tmp_path):
    model = ColorGenerator(architecture="unet_bins", base_channels=8, depth=3).eval()
    l_channel = torch.rand(2, 1, 32, 48) * 100
    logits = model(model.net.encode(l_channel))
    assert logits.shape == (2, model.net.num_bins, 16, 24), "bins at half resolution"
    muted, vivid = model.predict_ab(l_channel, vividness=0.0), model.predict_ab(l_channel, vividness=1.0)
    assert muted.shape == vivid.shape == (2, 2, 32, 48)
    assert vivid.norm(dim=1).mean() > muted.norm(dim=1).mean(), "a lower temperature moves away from the mean colour"
    with pytest.raises(ValueError, match="vividness"):
        model.predict_ab(l_channel, vividness=1.5)
    model.save_pretrained(tmp_path)
    loaded = ColorGenerator.from_pretrained(tmp_path).eval()
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == "unet_bins"
    torch.testing.assert_close(loaded.predict_ab(l_channel), model.predict_ab(l_channel))


def test_unet_bins_soft_targets_encode_the_true_colour():
    from colorgan_hf.color import rgb_to_lab

    model = ColorGenerator(architecture="unet_bins", base_channels=8, depth=2)
    rgb = torch.rand(500, 3, 1, 1).expand(-1, -1, 4, 4)  # flat patches: one colour per photo
    ab = rgb_to_lab(rgb)[:, 1:] / 110
    index, weight = model.net.soft_targets(ab)  # (B, 4, 2, 2) at half resolution
    torch.testing.assert_close(weight.sum(dim=1), torch.ones(500, 2, 2))
    decoded = (model.net.centers[index] * weight[..., None]).sum(dim=1).permute(0, 3, 1, 2)  # (B, 2, 2, 2)
    error = ((decoded - ab[:, :, :2, :2]) * 110).norm(dim=1)
    assert error.mean() < 0.5 and error.max() < 5, "the weighted bin centres give back the colour (in-gamut cells only)"
    loss = model.net.auxiliary_loss(model(torch.zeros(500, 1, 4, 4)), ab, None)
    assert torch.isfinite(loss) and loss > 0


def test_unet_pair_is_the_mix_of_its_two_unets_and_combine_joins_trained_ones(tmp_path):
    import combine  # train/combine.py (tests/training.py puts train/ on the path)

    from colorgan_hf.errors import ColorGANError

    torch.manual_seed(0)
    first = ColorGenerator(architecture="unet", base_channels=8, depth=3).eval()
    second = ColorGenerator(architecture="unet", base_channels=12, depth=3).eval()
    first.save_pretrained(tmp_path / "first")
    second.save_pretrained(tmp_path / "second")
    combine.main(combine.parse_args([str(tmp_path / "first"), str(tmp_path / "second"), "--mix", "0.25",
                                     "--output_dir", str(tmp_path / "pair")]))
    pair = ColorGenerator.from_pretrained(tmp_path / "pair").eval()
    assert pair.architecture == "unet_pair" and pair.net.config() == {"base_channels": 8, "second_base_channels": 12, "depth": 3,
                                                                      "mix": 0.25}
    l_channel = torch.rand(2, 1, 16, 24) * 100
    with torch.no_grad():
        expected = 0.75 * first.predict_ab(l_channel) + 0.25 * second.predict_ab(l_channel)
        torch.testing.assert_close(pair.predict_ab(l_channel), expected, atol=1e-4, rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "pair").iterdir() if not p.name.startswith(".")) == [
        "README.md", "config.json", "model.safetensors"]

    # Where the two disagree (suggest_hints' doubt): the distance of their colours; one network has no members.
    with torch.no_grad():
        apart = (first.predict_ab(l_channel) - second.predict_ab(l_channel)).norm(dim=1, keepdim=True)
        torch.testing.assert_close(pair.disagreement(l_channel) * AB_SCALE, apart, atol=1e-3, rtol=1e-4)
        assert first.disagreement(l_channel) is None
        assert ColorGenerator(architecture="paper", base_channels=4).disagreement(torch.rand(1, 1, 120, 120) * 100) is None

    with pytest.raises(ColorGANError, match="the second generator is a 'paper' one: only 'unet' generators"):
        combine.combine(first, ColorGenerator(architecture="paper", base_channels=4), 0.5)
    with pytest.raises(ColorGANError, match="the first generator is a 'paper' one"):
        combine.combine(ColorGenerator(architecture="paper", base_channels=4), first, 0.5)
    with pytest.raises(ColorGANError, match="depths 3 and 2"):
        combine.combine(first, ColorGenerator(architecture="unet", base_channels=8, depth=2), 0.5)
    with pytest.raises(SystemExit):
        combine.parse_args(["a", "b", "--mix", "1.5", "--output_dir", str(tmp_path / "x")])


def test_combine_half_stores_float16_that_loads_as_float32(tmp_path):
    import combine  # train/combine.py
    from safetensors.torch import load_file

    torch.manual_seed(0)
    for name, width in (("first", 8), ("second", 12)):
        ColorGenerator(architecture="unet", base_channels=width, depth=3).save_pretrained(tmp_path / name)
    for out, half in (("full", []), ("half", ["--half"])):
        combine.main(combine.parse_args([str(tmp_path / "first"), str(tmp_path / "second"), *half, "--output_dir", str(tmp_path / out)]))
    stored = load_file(tmp_path / "half" / "model.safetensors")
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    full, half = (ColorGenerator.from_pretrained(tmp_path / out).eval() for out in ("full", "half"))
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "full" / "model.safetensors").stat().st_size
    l_channel = torch.rand(1, 1, 16, 24) * 100
    with torch.no_grad():
        assert (half.predict_ab(l_channel) - full.predict_ab(l_channel)).abs().max() < 0.5  # a*b* units


def test_combine_joins_a_unet_semantic_first_member_into_a_semantic_pair(tmp_path):
    import combine

    torch.manual_seed(1)
    first = ColorGenerator(architecture="unet_semantic", base_channels=8, depth=3).eval()
    torch.nn.init.normal_(first.net.semantic[-1].weight, std=0.05)
    second = ColorGenerator(architecture="unet", base_channels=12, depth=3).eval()
    pair = combine.combine(first, second, 0.4)
    assert pair.architecture == "semantic_pair"
    pair.save_pretrained(tmp_path)
    loaded = ColorGenerator.from_pretrained(tmp_path).eval()
    assert loaded.architecture == "semantic_pair" and not loaded.net.first.encoder.training
    l_channel = torch.rand(2, 1, 32, 48) * 100
    with torch.no_grad():
        expected = 0.6 * first.predict_ab(l_channel) + 0.4 * second.predict_ab(l_channel)
        torch.testing.assert_close(loaded.predict_ab(l_channel), expected, atol=1e-4, rtol=1e-5)


def test_the_shipped_vivid_model_is_the_default_pairs_second_unet():
    """``vivid`` (what videos use) is the default pair's wider U-Net saved on its own: the same
    weights as that member, in a plain ``unet`` that loads offline."""
    from colorgan_hf import load_default

    pair, vivid = load_default("default"), load_default("vivid")
    assert vivid.architecture == "unet" and vivid.net.base_channels == pair.net.second.base_channels == 48
    member = pair.net.second.state_dict()
    assert set(vivid.net.state_dict()) == set(member)
    assert all(torch.equal(value, member[name]) for name, value in vivid.net.state_dict().items())
    with torch.inference_mode():
        alone = vivid.predict_ab(torch.rand(1, 1, 64, 96) * 100)
    assert alone.shape == (1, 2, 64, 96) and torch.isfinite(alone).all()

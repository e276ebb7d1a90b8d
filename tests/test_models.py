import json

import pytest
import torch

from colorgan_hf import ColorDiscriminator, ColorGenerator, GANLoss

GEN_CONFIGS = {
    "unet": (dict(architecture="unet", base_channels=8, depth=3), (2, 1, 32, 48), (2, 2, 32, 48), (-1.0, 1.0)),
    "paper": (dict(architecture="paper", base_channels=4), (2, 1, 120, 120), (2, 3, 120, 120), (0.0, 1.0)),
}
DISC_CONFIGS = {
    "unet": (dict(architecture="unet", base_channels=8), (2, 3, 64, 64)),
    "paper": (dict(architecture="paper", base_channels=4), (2, 3, 120, 120)),
}


@pytest.mark.parametrize("arch", sorted(GEN_CONFIGS))
def test_generator_shapes_ranges_and_gradients(arch):
    kwargs, in_shape, out_shape, (low, high) = GEN_CONFIGS[arch]
    model = ColorGenerator(**kwargs)
    x = torch.rand(in_shape) * 2 - 1 if arch == "unet" else torch.rand(in_shape)
    y = model(x)
    assert y.shape == out_shape
    assert torch.isfinite(y).all()
    assert y.min() >= low and y.max() <= high
    y.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without a gradient: {missing}"


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


@pytest.mark.parametrize("arch", ["unet", "paper"])
def test_predict_ab_speaks_lab_for_both_architectures(arch):
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


@pytest.mark.parametrize("arch", ["unet", "paper"])
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

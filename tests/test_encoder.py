"""The frozen semantic encoder (MobileNetV2), its converter from TensorFlow.js, and unet_semantic."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import training  # noqa: F401  (puts train/ on the path)
import torch
from safetensors.torch import load_file, save_file

from colorgan_hf import ColorGenerator, ModelLoadError
from colorgan_hf.color import AB_SCALE, denormalize_ab
from colorgan_hf.encoders import MobileNetV2Features

# Keras's MobileNetV2 layer names, written out from its layout: (expansion, channels, repeats, stride) stages.
KERAS_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def keras_mobilenet_v2(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights under Keras's names and layouts (HWIO kernels, HW C 1 depthwise kernels, RGB stem)."""
    weights: dict[str, np.ndarray] = {}

    def conv(name: str, bn: str, kernel_shape: tuple, depthwise: bool = False) -> None:
        weights[f"{name}/{'depthwise_kernel' if depthwise else 'kernel'}"] = rng.normal(0, 0.1, kernel_shape).astype(np.float32)
        c = kernel_shape[2] if depthwise else kernel_shape[3]
        weights[f"{bn}/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        weights[f"{bn}/beta"] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[f"{bn}/moving_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[f"{bn}/moving_variance"] = rng.uniform(0.5, 1.5, c).astype(np.float32)

    conv("Conv1", "bn_Conv1", (3, 3, 3, 32))
    c_in, block = 32, 0
    for expansion, c_out, repeats, _ in KERAS_STAGES:
        for _ in range(repeats):
            prefix = "expanded_conv" if block == 0 else f"block_{block}"
            hidden = c_in * expansion
            if expansion != 1:
                conv(f"{prefix}_expand", f"{prefix}_expand_BN", (1, 1, c_in, hidden))
            conv(f"{prefix}_depthwise", f"{prefix}_depthwise_BN", (3, 3, hidden, 1), depthwise=True)
            conv(f"{prefix}_project", f"{prefix}_project_BN", (1, 1, hidden, c_out))
            c_in, block = c_out, block + 1
    conv("Conv_1", "Conv_1_bn", (1, 1, 320, 1280))
    return weights


def write_tfjs(folder, weights: dict[str, np.ndarray], quantize: set[str] = frozenset()) -> tuple:
    """A TensorFlow.js model.json + one shard; names in ``quantize`` stored as uint8 (min + scale * q)."""
    specs, chunks, stored = [], [], {}
    for name, value in weights.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32"}
        if name in quantize:
            low, scale = float(value.min()), float(value.max() - value.min()) / 255
            q = np.round((value - low) / scale).astype(np.uint8)
            spec["quantization"] = {"min": low, "scale": scale, "dtype": "uint8"}
            chunks.append(q.tobytes())
            stored[name] = q.astype(np.float32) * scale + low
        else:
            chunks.append(value.astype("<f4").tobytes())
            stored[name] = value
        specs.append(spec)
    (folder / "group1-shard1of1").write_bytes(b"".join(chunks))
    model_json = folder / "model.json"
    model_json.write_text(json.dumps({"modelTopology": {}, "weightsManifest": [{"paths": ["group1-shard1of1"], "weights": specs}]}))
    return model_json, stored


def test_encoder_gives_stride_16_and_32_maps_at_any_size():
    net = MobileNetV2Features().eval()
    for h, w in [(224, 224), (32, 48), (15, 33), (1, 1)]:
        mid, top = net(torch.rand(1, 1, h, w))
        assert mid.shape == (1, 96, -(-h // 16), -(-w // 16))
        assert top.shape == (1, 1280, -(-h // 32), -(-w // 32))
        assert (top >= 0).all() and (top <= 6).all(), "ReLU6 output"


def test_import_encoder_converts_a_keras_mobilenet_exactly(tmp_path):
    import import_encoder

    weights = keras_mobilenet_v2(np.random.default_rng(0))
    model_json, stored = write_tfjs(tmp_path, weights, quantize={"block_5_expand/kernel", "Conv_1_bn/gamma"})
    out = tmp_path / "enc" / "mobilenet.safetensors"
    import_encoder.main(import_encoder.parse_args([str(model_json), "--output", str(out)]))
    assert out.exists() and not list(out.parent.glob("*.partial"))

    net = MobileNetV2Features()
    net.load_state_dict(load_file(str(out)))
    state = net.state_dict()
    # The stem is the RGB kernel summed over colours; the rest is a transpose of Keras's layout.
    stem = torch.from_numpy(stored["Conv1/kernel"]).permute(3, 2, 0, 1).sum(dim=1, keepdim=True)
    assert torch.allclose(state["stem.0.weight"], stem)
    assert torch.allclose(state["blocks.5.expand.0.weight"], torch.from_numpy(stored["block_5_expand/kernel"]).permute(3, 2, 0, 1))
    assert not torch.allclose(torch.from_numpy(stored["block_5_expand/kernel"]), torch.from_numpy(weights["block_5_expand/kernel"])), \
        "the quantized tensor went through uint8"
    assert torch.allclose(state["blocks.14.depthwise.0.weight"],
                          torch.from_numpy(stored["block_14_depthwise/depthwise_kernel"]).permute(2, 3, 0, 1))
    assert torch.allclose(state["top.1.weight"], torch.from_numpy(stored["Conv_1_bn/gamma"]))
    assert torch.allclose(state["blocks.0.project.1.running_var"], torch.from_numpy(stored["expanded_conv_project_BN/moving_variance"]))

    # On a gray image the converted net is the Keras net on R = G = B: check the stem's output.
    gray = torch.rand(1, 1, 8, 8)
    rgb_stem = torch.nn.functional.conv2d(torch.nn.functional.pad(gray.expand(1, 3, 8, 8), (0, 1, 0, 1)),
                                          torch.from_numpy(stored["Conv1/kernel"]).permute(3, 2, 0, 1), stride=2)
    assert torch.allclose(net.stem[0](torch.nn.functional.pad(gray, (0, 1, 0, 1))), rgb_stem, atol=1e-5)


def test_import_encoder_rgb_keeps_the_colour_stem_and_classifies_colour_photos(tmp_path):
    import import_encoder

    weights = keras_mobilenet_v2(np.random.default_rng(2))
    model_json, stored = write_tfjs(tmp_path, weights)
    out = tmp_path / "rgb.safetensors"
    import_encoder.main(import_encoder.parse_args([str(model_json), "--output", str(out), "--rgb"]))
    net = MobileNetV2Features(in_channels=3)
    net.load_weights(out)
    assert torch.allclose(net.state_dict()["stem.0.weight"], torch.from_numpy(stored["Conv1/kernel"]).permute(3, 2, 0, 1))
    gray_net = import_encoder.convert(import_encoder.read_tfjs_weights(model_json)).eval()
    net.eval()
    gray = torch.rand(1, 1, 24, 24)
    with torch.no_grad():  # on R = G = B both encoders are the same network
        assert torch.allclose(net.block_features(gray.expand(1, 3, 24, 24), (5,))[0], gray_net.features_after(gray, 5), atol=1e-4)
    with pytest.raises(ModelLoadError, match="rgb.safetensors: not a MobileNetV2 encoder of 1-channel input .*stem.0.weight"):
        MobileNetV2Features().load_weights(out)  # the gray encoder cannot take the colour stem


def test_block_features_are_the_outputs_of_those_blocks():
    net = MobileNetV2Features(in_channels=3).eval()
    image = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        found = net.block_features(image, (2, 5, 9))
        assert [f.shape[1:] for f in found] == [(24, 10, 10), (32, 5, 5), (64, 3, 3)]
        assert torch.equal(found[1], net.features_after(image, 5))


def test_import_encoder_names_what_is_wrong(tmp_path):
    import import_encoder

    from colorgan_hf.errors import ColorGANError

    bad = tmp_path / "model.json"
    bad.write_text("{not json")
    with pytest.raises(ColorGANError, match="model.json: not a TensorFlow.js model.json"):
        import_encoder.read_tfjs_weights(bad)
    weights = keras_mobilenet_v2(np.random.default_rng(1))
    del weights["block_7_project/kernel"]
    model_json, _ = write_tfjs(tmp_path, weights)
    with pytest.raises(ColorGANError, match="block_7_project/kernel"):
        import_encoder.convert(import_encoder.read_tfjs_weights(model_json))


def _encoder_file(tmp_path) -> str:
    path = tmp_path / "encoder.safetensors"
    torch.manual_seed(0)
    net = MobileNetV2Features()
    for module in net.modules():  # non-trivial statistics, so a change would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return str(path)


def test_unet_semantic_starts_as_its_unet_and_keeps_the_encoder_frozen(tmp_path):
    unet = ColorGenerator(architecture="unet", base_channels=8, depth=3).eval()
    sem = ColorGenerator(architecture="unet_semantic", base_channels=8, depth=3)
    sem.load_state_dict(unet.state_dict(), strict=False)
    sem.net.load_encoder(_encoder_file(tmp_path))
    x = torch.rand(2, 1, 32, 48) * 2 - 1
    sem.eval()
    assert torch.allclose(sem(x), unet(x), atol=1e-5), "the projection starts at zero: the unet's own prediction"

    frozen = {k: v.clone() for k, v in sem.net.encoder.state_dict().items()}
    sem.train()
    assert not sem.net.encoder.training, "the encoder's batch norm keeps the classifier's statistics"
    optimizer = torch.optim.Adam([p for p in sem.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        (sem(x) - 0.3).square().mean().backward()
        optimizer.step()
    assert all(torch.equal(frozen[k], v) for k, v in sem.net.encoder.state_dict().items()), "the encoder never trains"
    assert sem.net.semantic[-1].weight.abs().sum() > 0, "the projection learns"
    sem.eval()
    assert not torch.allclose(sem(x), unet(x), atol=1e-3)


def test_unet_semantic_encoder_file_errors_name_the_file(tmp_path):
    sem = ColorGenerator(architecture="unet_semantic", base_channels=8, depth=3)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="junk.safetensors: not a readable safetensors file"):
        sem.net.load_encoder(junk)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(other))
    with pytest.raises(ModelLoadError, match="other.safetensors: not a MobileNetV2 encoder"):
        sem.net.load_encoder(other)


def test_semantic_bins_is_the_bins_head_on_the_semantic_unet(tmp_path):
    model = ColorGenerator(architecture="semantic_bins", base_channels=8, depth=3, bin_size=20, vividness=0.3)
    model.net.load_encoder(_encoder_file(tmp_path))
    torch.nn.init.normal_(model.net.semantic[-1].weight, std=0.01)  # as after a first step: the zero layer passes no gradient
    x = torch.rand(2, 1, 32, 48) * 2 - 1
    logits = model(x)
    assert logits.shape == (2, model.net.num_bins, 16, 24), "a distribution over bins at half resolution"
    target = torch.rand(2, 2, 32, 48) * 2 - 1
    loss = model.net.auxiliary_loss(logits, target, None) + (model.net.image(logits) - target).abs().mean()
    loss.backward()
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert not [name for name, p in trained if p.grad is None or p.grad.abs().sum() == 0], "every trained parameter gets a gradient"
    assert all(".encoder." in name for name, p in model.named_parameters() if not p.requires_grad)
    assert all(p.grad is None for p in model.net.encoder.parameters())

    model.eval()
    l_channel = torch.rand(2, 1, 32, 48) * 100
    muted, vivid = model.predict_ab(l_channel, vividness=0.0), model.predict_ab(l_channel, vividness=1.0)
    assert muted.shape == (2, 2, 32, 48) and torch.isfinite(vivid).all()
    logits = model(model.net.encode(l_channel))
    mode = model.net.centers[logits.argmax(dim=1)].permute(0, 3, 1, 2)  # (B, 2, h, w): the likeliest bin's colour
    mode = torch.nn.functional.interpolate(mode, scale_factor=2, mode="bilinear", align_corners=False) * AB_SCALE
    assert (vivid - mode).norm(dim=1).mean() < (muted - mode).norm(dim=1).mean(), "vividness moves towards the likeliest colour"
    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config == {"architecture": "semantic_bins", "base_channels": 8, "depth": 3, "bin_size": 20, "vividness": 0.3}
    loaded = ColorGenerator.from_pretrained(tmp_path / "saved").eval()
    assert not loaded.net.encoder.training
    torch.testing.assert_close(loaded.predict_ab(l_channel), model.predict_ab(l_channel))
    torch.testing.assert_close(loaded.net.encoder.top[0].weight, model.net.encoder.top[0].weight)


def test_semantic_bins_pair_mixes_the_decoded_colours_and_trains_both_members(tmp_path):
    import combine

    torch.manual_seed(2)
    first = ColorGenerator(architecture="semantic_bins", base_channels=8, depth=3, bin_size=20, vividness=0.3).eval()
    first.net.load_encoder(_encoder_file(tmp_path))
    torch.nn.init.normal_(first.net.semantic[-1].weight, std=0.05)
    second = ColorGenerator(architecture="unet", base_channels=12, depth=3).eval()
    pair = combine.combine(first, second, 0.4)
    assert pair.architecture == "semantic_bins_pair"
    l_channel = torch.rand(2, 1, 32, 48) * 100
    with torch.no_grad():
        for vividness in (None, 0.0, 1.0):  # the knob reaches the first member
            expected = 0.6 * first.predict_ab(l_channel, vividness) + 0.4 * second.predict_ab(l_channel)
            torch.testing.assert_close(pair.predict_ab(l_channel, vividness), expected, atol=1e-4, rtol=1e-5)
        assert not torch.allclose(pair.predict_ab(l_channel, 0.0), pair.predict_ab(l_channel, 1.0))
        # How far apart the members' decoded colours are, where suggest_hints looks for doubt.
        apart = (first.predict_ab(l_channel) - second.predict_ab(l_channel)).norm(dim=1, keepdim=True)
        torch.testing.assert_close(denormalize_ab(pair.disagreement(l_channel)), apart, atol=1e-3, rtol=1e-4)
    pair.save_pretrained(tmp_path / "pair")
    config = json.loads((tmp_path / "pair" / "config.json").read_text())
    assert config == {"architecture": "semantic_bins_pair", "base_channels": 8, "depth": 3, "bin_size": 20, "vividness": 0.3,
                      "second_base_channels": 12, "mix": 0.4}
    loaded = ColorGenerator.from_pretrained(tmp_path / "pair").eval()
    assert not loaded.net.first.encoder.training
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_ab(l_channel), pair.predict_ab(l_channel))

    # Trained whole: the pixel loss on the mix and the class loss on the first's logits reach every
    # parameter but the frozen encoder's.
    loaded.train()
    assert not loaded.net.first.encoder.training, "the encoder's batch-norm statistics stay the classifier's"
    x = torch.rand(2, 1, 32, 48) * 2 - 1
    output = loaded(x)
    assert output.shape == (2, loaded.net.first.num_bins + 8, 16, 24)
    target = torch.rand(2, 2, 32, 48) * 2 - 1
    image = loaded.net.image(output)
    assert image.shape == target.shape and image.abs().max() <= 1.0
    ((image - target).abs().mean() + loaded.net.auxiliary_loss(output, target, None)).backward()
    trained = [(name, p) for name, p in loaded.named_parameters() if p.requires_grad]
    assert not [name for name, p in trained if p.grad is None or p.grad.abs().sum() == 0], "every trained parameter gets a gradient"
    assert all(".encoder." in name for name, p in loaded.named_parameters() if not p.requires_grad)


def pair_set(folder: Path, photos: list) -> str:
    """``photos`` (PIL images) as the train split of a pair set, as they are (no resizing, no split to chance)."""
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"color": photos, "gray": [i.convert("L") for i in photos], "source": ["test"] * len(photos)},
        features=datasets.Features({"color": datasets.Image(), "gray": datasets.Image(), "source": datasets.Value("string")}))
    }).save_to_disk(folder)
    return str(folder)


def probe_inputs(tmp_path: Path) -> tuple[list, Path, Path]:
    """For the probes: the test photos, a folder holding the first of them as the held-out photo
    (so it is also a training photo), and a randomly initialised encoder file."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in sorted(training.PHOTOS_DIR.glob("*.jpg"))]
    held_out = tmp_path / "photos"
    held_out.mkdir()
    images[0].save(held_out / "first.png")
    encoder = tmp_path / "encoder.safetensors"
    torch.manual_seed(0)
    save_file(MobileNetV2Features().state_dict(), encoder)
    return images, held_out, encoder


def test_probe_perceptual_scores_each_candidate_against_the_truth(train_pair_dir, tmp_path):
    """train/probe_perceptual.py: the pixel loss of half the truth's chroma is half gray's; the perceptual
    loss is smallest for the candidates nearest the truth."""
    import probe_perceptual
    from datasets import load_from_disk

    encoder = tmp_path / "rgb.safetensors"
    torch.manual_seed(0)
    save_file(MobileNetV2Features(in_channels=3).state_dict(), encoder)
    model = tmp_path / "unet"
    torch.manual_seed(0)
    ColorGenerator(architecture="unet", base_channels=8, depth=2).save_pretrained(model)
    source = load_from_disk(str(train_pair_dir))["train"]["source"][0]
    lines = probe_perceptual.main(probe_perceptual.parse_args(
        ["--pairs", str(train_pair_dir), "--encoder", str(encoder), "--model", str(model), "--count", "4", "--sources", source,
         "--blocks", "2", "5"]))
    rows = {line.split(" | ")[0][2:]: [float(v) for v in line.strip(" |").split(" | ")[1:]] for line in lines[3:]}
    assert len(rows) == 7 and all(len(v) == 2 for v in rows.values())
    assert rows["truth, chroma x0.5"][0] == pytest.approx(rows["gray"][0] / 2, abs=2e-3)
    assert rows["truth, chroma x1.2"][1] < rows["truth, hue +120 degrees"][1]
    with pytest.raises(SystemExit, match="no training photos from bsds500"):
        probe_perceptual.main(probe_perceptual.parse_args(["--pairs", str(train_pair_dir), "--encoder", str(encoder), "--model",
                                                           str(model), "--sources", "bsds500"]))


def test_probe_neighbours_finds_a_photo_itself_and_describes_it_as_the_metrics_do(tmp_path, caplog):
    """train/probe_neighbours.py: a held-out photo that is also a training photo is its own
    nearest neighbour (intersection 1, no share error); a red patch is all red by hue_recall's classes."""
    import probe_neighbours
    from PIL import Image

    from colorgan_hf.metrics.functional import HUE_CLASSES

    red = Image.new("RGB", (32, 32), (200, 30, 30))
    histogram, shares = probe_neighbours.describe(red)
    assert histogram.sum() == pytest.approx(1.0) and shares[HUE_CLASSES.index("red")] == pytest.approx(1.0)
    assert shares.sum() == pytest.approx(1.0) and probe_neighbours.describe(Image.new("RGB", (8, 8), (90, 90, 90)))[1].sum() == 0

    def probe(pairs: str, encoder_file: Path, *extra: str) -> None:
        probe_neighbours.main(probe_neighbours.parse_args(["--pairs", pairs, "--photos", str(held_out), "--encoder",
                                                           str(encoder_file), *extra]))

    images, held_out, encoder = probe_inputs(tmp_path)
    pairs = pair_set(tmp_path / "pairs", images)
    with caplog.at_level("INFO", logger="colorgan_hf.probe_neighbours"):
        probe(pairs, encoder, "--neighbours", "1")
    nearest = next(line for line in caplog.messages if line.startswith("1 nearest"))
    assert "histogram intersection 1.000; class-share error 0.000" in nearest
    assert (tmp_path / "neighbours_block10.npz").exists()  # the training photos' descriptions, cached beside the encoder

    # Another pair set is described afresh, not answered from the first one's cache.
    caplog.clear()
    with caplog.at_level("INFO", logger="colorgan_hf.probe_neighbours"):
        probe(pair_set(tmp_path / "pairs2", images[:2]), encoder, "--neighbours", "1")
    assert any("1 held-out photos, 2 training photos" in line for line in caplog.messages)

    bad = tmp_path / "not_an_encoder.safetensors"
    save_file({"unrelated": torch.zeros(2)}, bad)
    with pytest.raises(ModelLoadError, match="not_an_encoder.safetensors: not a MobileNetV2 encoder"):
        probe(pairs, bad)


def test_probe_cells_describes_cells_as_the_metrics_do_and_finds_a_photos_own_cells(tmp_path, caplog):
    """train/probe_cells.py: a half-red, half-gray photo's cells are all red or all neutral by
    hue_recall's classes; a held-out photo that is also a training photo has its own cells as
    nearest cells (recall and precision 1 in every class it has); the head learns shares that
    its features determine."""
    import probe_cells
    from PIL import Image

    from colorgan_hf.metrics.functional import HUE_CLASSES

    half = Image.new("RGB", (64, 32), (90, 90, 90))
    half.paste((200, 30, 30), (0, 0, 32, 32))
    shares = probe_cells.class_shares(probe_cells.lab_of(half), 15, (2, 4))  # (8 cells, 6)
    red, neutral = HUE_CLASSES.index("red"), len(HUE_CLASSES)
    assert torch.equal(shares[:, red], torch.tensor([1.0, 1, 0, 0, 1, 1, 0, 0]))
    assert torch.equal(shares[:, neutral], 1 - shares[:, red]) and shares.sum() == 8

    # Two clusters of features, each with its own shares: the head's guess follows the feature.
    features = torch.cat([torch.randn(4096, 8) * 0.1 + 1, torch.randn(4096, 8) * 0.1 - 1])
    targets = torch.zeros(8192, 6)
    targets[:4096, HUE_CLASSES.index("green")] = 1
    targets[4096:, neutral] = 1
    head = probe_cells.train_head(features, targets, epochs=3, seed=0)
    guess = torch.softmax(head(torch.stack([torch.ones(8), -torch.ones(8)])), 1)
    assert guess[0].argmax() == HUE_CLASSES.index("green") and guess[1].argmax() == neutral and guess.max(1).values.min() > 0.5

    images, held_out, encoder = probe_inputs(tmp_path)
    with caplog.at_level("INFO", logger="colorgan_hf.probe_cells"):
        probe_cells.main(probe_cells.parse_args(["--pairs", pair_set(tmp_path / "pairs", images), "--photos", str(held_out),
                                                 "--encoder", str(encoder), "--neighbours", "1", "--epochs", "1"]))
    own = probe_cells.class_shares(probe_cells.lab_of(images[0]), 15, (1, 1))[0]  # the photo's own share of each class
    line = next(m for m in caplog.messages if m.startswith("1 nearest cells"))
    recall, precision = ([float(v) for v in group.split(" / ")] for group in re.search(r"recall ([\d. /]+); precision ([\d. /]+)", line).groups())
    present = [k for k in range(6) if own[k] > 0.01]
    assert present and all(recall[k] >= 0.95 and precision[k] >= 0.95 for k in present), line
    assert any(m.startswith("trained head") for m in caplog.messages)
    assert (tmp_path / "cells_block12.npz").exists()  # the training cells, cached beside the encoder

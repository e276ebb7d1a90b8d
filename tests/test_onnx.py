"""`colorgan export-onnx` and the onnxruntime path of colorize: the same photo as PyTorch, within one 8-bit level."""

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")

from colorgan_hf import ModelLoadError, colorize, load_default  # noqa: E402
from colorgan_hf.cli import main  # noqa: E402
from colorgan_hf.onnx import OnnxGenerator, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "default.onnx"
    assert main(["export-onnx", "-o", str(path)]) == 0
    return path


def test_onnx_output_is_within_one_level_of_pytorch(default_onnx, photo_paths):
    model = load_default()
    for path in photo_paths:
        for size in (128, 256):
            reference = np.asarray(colorize(path, model, size=size), dtype=np.int16)
            onnx = np.asarray(colorize(path, default_onnx, size=size), dtype=np.int16)
            assert reference.shape == onnx.shape
            assert np.abs(reference - onnx).max() <= 1, (path.name, size)


def test_onnx_batches_and_any_shape(default_onnx, photo_paths):
    generator = OnnxGenerator(default_onnx)
    images = [Image.open(p) for p in photo_paths] + [Image.new("L", (37, 300), 90)]
    results = colorize(images, generator, size=96, batch_size=3)
    assert [r.size for r in results] == [i.size for i in images]


def test_paper_model_exports_with_its_fixed_size(tmp_path, photo_paths):
    path = export_onnx("paper", tmp_path / "paper.onnx")
    assert json.loads((tmp_path / "paper.onnx.json").read_text())["input_size"] == 120
    reference = np.asarray(colorize(photo_paths[0], "paper"), dtype=np.int16)
    onnx = np.asarray(colorize(photo_paths[0], path), dtype=np.int16)
    assert np.abs(reference - onnx).max() <= 1


def test_cli_colorizes_with_an_onnx_model(default_onnx, photo_paths, tmp_path):
    assert main(["-q", "colorize", str(photo_paths[0]), "-o", str(tmp_path / "out"), "--model", str(default_onnx)]) == 0
    assert Image.open(tmp_path / "out" / f"{photo_paths[0].stem}_color.jpg").size == Image.open(photo_paths[0]).size


def test_onnx_without_its_sidecar_or_broken_is_a_clear_error(default_onnx, tmp_path):
    alone = tmp_path / "alone.onnx"
    alone.write_bytes(default_onnx.read_bytes())
    with pytest.raises(ModelLoadError, match="export-onnx"):
        OnnxGenerator(alone)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text('{"stride": 16, "input_size": null}')
    with pytest.raises(ModelLoadError, match="not a readable ONNX model"):
        OnnxGenerator(broken)


@pytest.mark.parametrize("sidecar, problem", [
    ({"input_size": None}, 'no "stride"'),
    ({"stride": 0, "input_size": None}, '"stride" must be a whole number from 1 to 2048, got 0'),
    ({"stride": -16}, '"stride" must be a whole number from 1 to 2048, got -16'),
    ({"stride": "16"}, '"stride" must be a whole number from 1 to 2048, got \'16\''),
    ({"stride": 16.5}, '"stride" must be a whole number from 1 to 2048, got 16.5'),
    ({"stride": True}, '"stride" must be a whole number from 1 to 2048, got True'),
    ({"stride": 4096}, '"stride" must be a whole number from 1 to 2048, got 4096'),
    ({"stride": 16, "input_size": 0}, '"input_size" must be a whole number from 1 to 2048, got 0'),
    ({"stride": 16, "input_size": [120]}, '"input_size" must be a whole number from 1 to 2048, got [120]'),
    ({"stride": 16, "vividness": 2}, '"vividness" must be null or a number in [0, 1], got 2'),
    ({"stride": 16, "vividness": float("nan")}, '"vividness" must be null or a number in [0, 1], got nan'),
    ({"stride": 16, "architecture": 7}, '"architecture" must be null or a name, got 7'),
    ({"stride": 16, "strid": 16}, "unknown key(s) 'strid'"),
    ([16], "expected a JSON object, got list"),
])
def test_a_bad_sidecar_is_refused_at_load_naming_it(tmp_path, sidecar, problem):
    """QA 5: a sidecar without "stride" was a KeyError traceback, "stride": 0 a ZeroDivisionError for each
    photo. Every key is checked when the model is loaded: a ModelLoadError naming the sidecar and the problem."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"the sidecar is read before the model")
    (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
    for load in (OnnxGenerator, lambda path: colorize(Image.new("L", (40, 30)), path)):
        with pytest.raises(ModelLoadError) as info:
            load(model)
        assert str(info.value).startswith(f"{tmp_path / 'm.onnx.json'}: {problem}"), info.value
        assert "export-onnx" in str(info.value)


def test_a_sidecar_with_only_its_stride_loads(default_onnx, tmp_path, photo_paths):
    model = tmp_path / "m.onnx"
    model.write_bytes(default_onnx.read_bytes())
    (tmp_path / "m.onnx.json").write_text('{"stride": 16}')
    generator = OnnxGenerator(model)
    assert (generator.stride, generator.input_size, generator.vividness) == (16, None, None)
    assert colorize(photo_paths[0], generator, size=64).size == Image.open(photo_paths[0]).size


def test_export_path_must_end_in_onnx_and_be_writable(tmp_path, monkeypatch, capsys):
    """QA 5: export_onnx(model, "dir/noext") wrote noext and noext.json (the README says NAME.onnx.json);
    a folder as the path was an IsADirectoryError traceback after the whole export. Each is refused
    up front with an OptionError naming the path, and nothing is written."""
    from colorgan_hf import ColorGenerator, OptionError
    from colorgan_hf import onnx as onnx_module

    model = ColorGenerator(architecture="unet", base_channels=8, depth=3).eval()
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'sub' / 'noext'}: an ONNX model's path must end in \.onnx"):
        export_onnx(model, tmp_path / "sub" / "noext")
    assert not (tmp_path / "sub").exists()
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'folder.onnx'}: is a folder"):
        export_onnx(model, tmp_path / "folder.onnx")
    (tmp_path / "m.onnx.json").mkdir()
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'm.onnx.json'}: is a folder"):
        export_onnx(model, tmp_path / "m.onnx")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'a_file' / 'm.onnx'}: cannot be written: {tmp_path / 'a_file'} is a file"):
        export_onnx(model, tmp_path / "a_file" / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder.onnx", "m.onnx.json"]
    # The CLI says it in one line, no traceback.
    assert main(["export-onnx", "-o", str(tmp_path / "folder.onnx")]) == 1
    assert "Traceback" not in capsys.readouterr().err

    # A folder that refuses the write (no permission: root would not be refused, so it is simulated).
    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(onnx_module, "atomic_path", refused)
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'ok.onnx'}: cannot be written \(PermissionError: Permission denied\)"):
        export_onnx(model, tmp_path / "ok.onnx")


def test_onnx_generator_changes_its_threads_and_gives_the_same_colours(default_onnx, photo_paths):
    import torch

    generator = OnnxGenerator(default_onnx, threads=2)
    l_small = torch.linspace(0, 100, 64 * 48).reshape(1, 1, 48, 64)
    before = generator.predict_ab(l_small)
    session = generator.session
    generator.set_threads(2)
    assert generator.session is session, "the same count keeps its session"
    generator.set_threads(1)
    assert generator.threads == 1 and generator.session is not session
    assert generator.session.get_session_options().intra_op_num_threads == 1
    torch.testing.assert_close(generator.predict_ab(l_small), before, atol=1e-3, rtol=1e-3)


def test_unet_semantic_exports_with_its_encoder_at_any_shape(tmp_path):
    import torch

    from colorgan_hf import ColorGenerator

    torch.manual_seed(0)
    model = ColorGenerator(architecture="unet_semantic", base_channels=8, depth=3).eval()
    torch.nn.init.normal_(model.net.semantic[-1].weight, std=0.05)  # the encoder's features reach the output
    generator = OnnxGenerator(export_onnx(model, tmp_path / "semantic.onnx"))
    for h, w in [(32, 48), (48, 80), (24, 8)]:  # 48x80 and 24x8: odd sides at the encoder's stride-2 steps
        l_channel = torch.rand(1, 1, h, w) * 100
        assert torch.allclose(generator.predict_ab(l_channel), model.predict_ab(l_channel), atol=0.05), (h, w)


def test_suggest_hints_with_an_onnx_model_weighs_every_pixel_alike(default_onnx, photo_paths):
    # An exported pair is one network to onnxruntime: no members to compare, so the spots are those of no doubt.
    import torch

    from colorgan_hf import suggest_hints
    from colorgan_hf.hints import suggest_points
    from colorgan_hf.pipeline import _prepare

    generator = OnnxGenerator(default_onnx)
    spots = suggest_hints(photo_paths[0], default_onnx, 4, size=128)
    prepared = _prepare(photo_paths[0], generator, 128, None)
    assert spots == suggest_points(prepared.l_small[0], None, tuple(prepared.l_full.shape[2:]), 4)
    assert spots != suggest_hints(photo_paths[0], load_default(), 4, size=128), "the PyTorch pair's doubt moves them"
    assert generator.disagreement(torch.zeros(1, 1, 16, 16)) is None

"""Every row of the README's table of hostile inputs, through colorize and the CLI."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from colorgan_hf import ImageLoadError, colorize
from colorgan_hf.cli import main
from colorgan_hf.images import load_image

from hostile import CASES, ERROR_CASES, expected_size, make_all


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    photo = Image.open(sorted(__import__("pathlib").Path(__file__).parent.glob("data/*.jpg"))[0]).convert("RGB")
    folder = tmp_path_factory.mktemp("hostile")
    make_all(folder, photo)
    return folder, photo


@pytest.fixture(scope="module")
def model():
    from colorgan_hf import load_default

    return load_default()


@pytest.mark.parametrize("name, expected", [(name, expected) for name, _, expected in CASES])
def test_colorize_gives_an_image_or_one_clear_error(hostile_dir, model, name, expected):
    folder, photo = hostile_dir
    path = folder / name
    if expected[0] == "error":
        with pytest.raises(ImageLoadError) as info:
            colorize(path, model)
        assert str(path) in str(info.value) and expected[1] in str(info.value)
    else:
        out = colorize(path, model)
        assert out.size == expected_size(expected, photo)
        assert out.mode in ("RGB", "RGBA")
        if name == "palette_transparent.png":
            assert out.mode == "RGBA"


def test_bomb_is_refused_before_decoding(hostile_dir, monkeypatch):
    folder, _ = hostile_dir
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(ImageLoadError, match="COLORGAN_MAX_PIXELS"):
        load_image(folder / "bomb_30000x30000.png")
    assert not decoded, "no pixel of the bomb was decoded"


def test_pixel_limit_is_a_documented_setting(hostile_dir, monkeypatch):
    folder, photo = hostile_dir
    monkeypatch.setenv("COLORGAN_MAX_PIXELS", "100")
    with pytest.raises(ImageLoadError, match="over the limit of 100"):
        load_image(folder / "colour_photo.jpg")


def test_cli_on_all_hostile_files(hostile_dir, tmp_path, capsys):
    folder, photo = hostile_dir
    out = tmp_path / "out"
    # page.html is named explicitly: a folder scan only picks image extensions.
    code = main(["-q", "colorize", str(folder), str(folder / "page.html"), "-o", str(out), "--size", "64"])
    assert code == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("colorgan: error:")]
    assert len(err_lines) == len(ERROR_CASES), err_lines
    for name in ERROR_CASES:
        assert sum(name in line for line in err_lines) == 1
    assert "Traceback" not in "\n".join(err_lines)
    produced = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert not [p for p in produced if ".tmp" in p or p.startswith(".")], "no partial files left behind"
    for name, _, expected in CASES:
        stem = name.rsplit(".", 1)[0]
        matches = [p for p in produced if p.startswith(f"{stem}_color.")]
        assert bool(matches) == (expected[0] == "ok"), name
        if matches:
            assert Image.open(out / matches[0]).size == expected_size(expected, photo)


MODES = ["L", "RGB", "RGBA", "LA", "P", "I;16", "I", "F", "1", "CMYK"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 48), height=st.integers(1, 48), mode=st.sampled_from(MODES), seed=st.integers(0, 2**16))
def test_property_any_size_and_mode(tiny_unet, width, height, mode, seed):
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        image = base.convert(mode)
    out = colorize(image, tiny_unet, size=32)
    assert out.size == (width, height)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 40), height=st.integers(1, 40), channels=st.sampled_from([0, 1, 2, 3, 4]),
       dtype=st.sampled_from(["uint8", "uint16", "float32", "float64", "bool", "int32"]), seed=st.integers(0, 2**16))
def test_property_any_numpy_array(tiny_unet, width, height, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 0 else (height, width, channels)
    # Each dtype over its whole documented range: floats in [0, 1], other integers as 8-bit.
    array = (rng.random(shape) * (255 if dtype in ("uint8", "int32") else 65535 if dtype == "uint16" else 1.0)).astype(dtype)
    out = colorize(array, tiny_unet, size=32)
    assert out.size == (width, height)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 40), height=st.integers(1, 40), dtype=st.sampled_from(["float32", "float64", "int32", "int64", "int16"]),
       scale=st.sampled_from([2.0, 255.0, 65535.0, -1.0]), seed=st.integers(0, 2**16))
def test_property_arrays_out_of_their_range_are_one_clear_error(tiny_unet, width, height, dtype, scale, seed):
    """QA 2: floats beyond [0, 1] were clipped (a 0-255 photo came out white), other integers beyond 0-255 divided by 255."""
    rng = np.random.default_rng(seed)
    array = rng.random((height, width)) * (scale if dtype.startswith("float") else scale * 300)
    array.flat[0] = scale if dtype.startswith("float") else scale * 300  # at least one pixel out of range
    array = array.astype(dtype)
    with pytest.raises(ImageLoadError, match=r"^<array .*>: .*must be in (\[0, 1\]|0-255), got values from"):
        colorize(array, tiny_unet, size=32)


@pytest.mark.parametrize("name, expected", [(name, expected) for name, _, expected in CASES])
def test_a_binary_file_object_reads_as_its_file(hostile_dir, tiny_unet, name, expected):
    """QA 1: colorize(open(path, "rb")) iterated the file's lines. Each hostile file, as a file object,
    gives what its path gives, and any error names the file."""
    folder, photo = hostile_dir
    path = folder / name
    with open(path, "rb") as handle:
        if expected[0] == "error":
            with pytest.raises(ImageLoadError) as info:
                colorize(handle, tiny_unet, size=32)
            # an empty stream is not an image to Pillow: only a path's size says "empty"
            reason = "not an image" if name == "zero_bytes.jpg" else expected[1]
            assert str(info.value).startswith(f"{path}: ") and reason in str(info.value)
        else:
            assert colorize(handle, tiny_unet, size=32).size == expected_size(expected, photo)


def test_pil_images_in_odd_states_are_one_clear_error_or_an_image(hostile_dir, tiny_unet, tmp_path):
    """QA 3: mode "La" was a raw ValueError (conversion from La to L not supported), a closed image a raw
    ValueError, a truncated JPEG opened with PIL "cannot convert mode RGB to RGB (image file is truncated ...)"."""
    folder, photo = hostile_dir
    small = photo.resize((40, 30))
    la = small.convert("LA")
    la.putalpha(128)
    out = colorize(la.convert("La"), tiny_unet, size=32)
    assert out.mode == "RGBA" and out.size == (40, 30)
    # La holds L premultiplied by alpha: at alpha 128 it keeps every other level of L.
    reference = np.asarray(colorize(la, tiny_unet, size=32), dtype=np.int16)
    assert np.array_equal(np.asarray(out)[..., 3], reference[..., 3])
    assert np.abs(np.asarray(out, dtype=np.int16) - reference).max() <= 3
    closed = Image.open(folder / "colour_photo.jpg")
    closed.load()
    closed.close()
    with pytest.raises(ImageLoadError, match=r"^<PIL image RGB \d+x\d+>: cannot be read: the PIL image or its file is closed"):
        colorize(closed, tiny_unet)
    with open(folder / "colour_photo.jpg", "rb") as handle:
        lazy = Image.open(handle)  # not decoded before its file was closed
    with pytest.raises(ImageLoadError, match="the PIL image or its file is closed"):
        colorize(lazy, tiny_unet)
    truncated = Image.open(folder / "truncated.jpg")
    with pytest.raises(ImageLoadError, match=r"^<PIL image RGB \d+x\d+>: truncated or corrupt image data \(OSError: image file is truncated"):
        colorize(truncated, tiny_unet)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2048), prefix=st.sampled_from([b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF"]))
def test_fuzz_image_loading_with_random_bytes(tmp_path_factory, data, prefix):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.img"
    path.write_bytes(prefix + data)
    try:
        loaded = load_image(path)
    except ImageLoadError as error:
        assert str(path) in str(error)
    else:
        assert loaded.rgb.ndim == 3 and loaded.rgb.shape[0] == 3


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 4000), flips=st.lists(st.integers(0, 4000), max_size=8))
def test_fuzz_mutated_real_jpeg(tmp_path_factory, cut, flips):
    original = bytearray(sorted(__import__("pathlib").Path(__file__).parent.glob("data/*.jpg"))[2].read_bytes())
    for index in flips:
        original[index % len(original)] ^= 0xFF
    path = tmp_path_factory.mktemp("fuzz") / "mutated.jpg"
    path.write_bytes(bytes(original[: len(original) - cut]))
    try:
        load_image(path)
    except ImageLoadError:
        pass


@pytest.mark.parametrize("value", ["0", "-5", "many", "1e8x"])
def test_a_bad_pixel_limit_is_said_once_before_any_work(value, hostile_dir, tmp_path, monkeypatch, capsys, caplog):
    folder, photo = hostile_dir
    monkeypatch.setenv("COLORGAN_MAX_PIXELS", value)
    with pytest.raises(ImageLoadError, match="COLORGAN_MAX_PIXELS must be a whole number of pixels, at least 1"):
        load_image(folder / "colour_photo.jpg")
    assert main(["-q", "colorize", str(folder / "colour_photo.jpg"), str(photo), "-o", str(tmp_path / "out")]) == 1
    said = capsys.readouterr().err + caplog.text
    assert said.count("COLORGAN_MAX_PIXELS") == 1, said
    assert not (tmp_path / "out").exists()


def test_an_empty_pixel_limit_is_the_default(hostile_dir, monkeypatch):
    folder, _ = hostile_dir
    monkeypatch.setenv("COLORGAN_MAX_PIXELS", "")
    assert load_image(folder / "colour_photo.jpg").size == Image.open(folder / "colour_photo.jpg").size
    with pytest.raises(ImageLoadError, match="over the limit of 100,000,000"):
        load_image(folder / "bomb_30000x30000.png")


def test_a_tiff_of_several_pages_says_only_its_first_is_colorized(tmp_path, capsys, caplog):
    """A scanned album saved as one multi-page TIFF: the first page is colorized, and the others are not lost
    without a word."""
    pages = [Image.new("L", (40, 30), 60), Image.new("L", (50, 20), 200), Image.new("L", (20, 20), 120)]
    album = tmp_path / "album.tif"
    pages[0].save(album, save_all=True, append_images=pages[1:])
    with pytest.warns(UserWarning, match=r"album\.tif: a TIFF of 3 pages; only the first is colorized"):
        assert load_image(album).size == (40, 30)
    single = tmp_path / "single.tif"
    pages[0].save(single)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(single)  # one page: nothing to say
    assert main(["-q", "colorize", str(album), "-o", str(tmp_path / "out"), "--size", "32"]) == 0
    said = capsys.readouterr().err + caplog.text
    assert said.count("a TIFF of 3 pages; only the first is colorized") == 1, said
    assert Image.open(tmp_path / "out" / "album_color.tif").size == (40, 30)

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from colorgan_hf import ImageLoadError, OptionError, colorize, load_default
from colorgan_hf.color import gray_from_l, rgb_to_lab
from colorgan_hf.pipeline import MAX_ASPECT, working_shape


@pytest.fixture(scope="module")
def model():
    return load_default()


def lab_of(image: Image.Image) -> torch.Tensor:
    """(3, H, W) CIELAB of a PIL image."""
    rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255
    return rgb_to_lab(rgb)


def lightness(image: Image.Image) -> torch.Tensor:
    return lab_of(image)[0]


def chroma(image: Image.Image) -> float:
    return lab_of(image)[1:].norm(dim=0).mean().item()


def ab_of(image: Image.Image) -> torch.Tensor:
    return lab_of(image)[1:]


def test_default_model_loads_offline_and_is_a_unet_pair_whose_first_is_the_fast_model(model):
    assert model.architecture == "unet_pair"
    assert not model.training
    fast = load_default("fast")
    assert fast.architecture == "unet" and not fast.training
    # The pair is stored in float16 (half the file); the fast model in float32.
    for name, tensor in fast.net.state_dict().items():
        stored = tensor.half().to(tensor.dtype) if tensor.is_floating_point() else tensor
        assert torch.equal(stored, model.net.first.state_dict()[name]), f"{name}: the fast model is not the pair's first U-Net"


def test_large_photo_keeps_size_and_luminance(model, photo):
    big = photo.resize((4000, 3000), Image.Resampling.BICUBIC)
    out = colorize(big, model)
    assert out.size == (4000, 3000) and out.mode == "RGB"
    assert (lightness(out) - lightness(big)).abs().mean() < 1.0


def test_gray_input_gets_colour(model, photo):
    gray = photo.convert("L")
    out = colorize(gray, model)
    assert out.size == gray.size
    assert chroma(gray) < 0.5
    assert chroma(out) > 2.0, "the shipped model should add visible colour"
    assert chroma(colorize(gray, model, saturation=0.0)) < 0.5


def test_colour_input_is_treated_as_gray(model, photo):
    # A colour photo and the gray photo of the same lightness give the same result: the
    # model sees only L, so the input's own colours cannot leak through.
    rgb = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255
    gray = gray_from_l(rgb_to_lab(rgb)[None, :1])[0, 0]
    gray_photo = Image.fromarray((gray * 255).round().byte().numpy(), mode="L")
    a = np.asarray(colorize(photo, model), dtype=np.int16)
    b = np.asarray(colorize(gray_photo, model), dtype=np.int16)
    assert np.abs(a - b).mean() < 2.0


def _modes(photo: Image.Image) -> dict[str, Image.Image]:
    small = photo.resize((97, 61))
    gray = small.convert("L")
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(small.size))
    palette = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257)
    return {
        "L": gray,
        "RGB": small,
        "RGBA": rgba,
        "LA": gray.convert("LA"),
        "P+transparency": palette,
        "P": small.convert("P"),
        "CMYK": small.convert("CMYK"),
        "I;16": sixteen,
        "I": gray.convert("I"),
        "1": gray.convert("1"),
        "F": gray.convert("F"),
    }


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P+transparency", "P", "CMYK", "I;16", "I", "1", "F"])
def test_every_mode_works_and_keeps_size_and_alpha(model, photo, mode):
    image = _modes(photo)[mode]
    out = colorize(image, model)
    assert out.size == image.size
    has_alpha = mode in ("RGBA", "LA", "P+transparency")
    assert out.mode == ("RGBA" if has_alpha else "RGB")
    if mode == "RGBA":
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(image.getchannel("A")))
    if mode in ("L", "I;16"):
        assert (lightness(out) - lightness(image.convert("L") if mode == "L" else _modes(photo)["L"])).abs().mean() < 1.0


def test_cmyk_jpeg_and_16bit_png_files(model, photo, tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    photo.convert("CMYK").save(cmyk)
    png16 = tmp_path / "gray16.png"
    Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(png16)
    assert Image.open(png16).mode.startswith("I")
    for path in (cmyk, png16):
        assert colorize(path, model).size == photo.size


def test_exif_rotated_jpeg_is_upright(model, photo, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    photo.save(path, exif=exif, quality=95)
    upright = ImageOps.exif_transpose(Image.open(path))
    out = colorize(path, model)
    assert out.size == (photo.height, photo.width) == upright.size
    assert (lightness(out) - lightness(upright)).abs().mean() < 1.0


def test_numpy_inputs(model, photo):
    gray = np.asarray(photo.convert("L"))
    for array in (gray, gray.astype(np.uint16) * 257, gray.astype(np.float32) / 255, np.asarray(photo), np.asarray(photo.convert("RGBA"))):
        out = colorize(array, model)
        assert out.size == (gray.shape[1], gray.shape[0])


def test_batched_call_matches_single_calls(model, photo_paths):
    outs = colorize(photo_paths, model, batch_size=2)
    assert isinstance(outs, list) and len(outs) == len(photo_paths)
    for path, out in zip(photo_paths, outs):
        single = colorize(path, model)
        assert out.size == single.size
        assert np.abs(np.asarray(out, dtype=np.int16) - np.asarray(single, dtype=np.int16)).max() <= 2


def test_model_in_train_mode_stays_in_train_mode_and_gives_the_eval_result(photo):
    model = load_default().train()  # a copy of its own: the module's fixture is not touched
    next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()  # a mixed state, as fine-tuning may leave
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = colorize(photo, model)
    assert [m.training for m in model.modules()] == modes, "every module keeps its own mode"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()), "batch-norm statistics were not updated"
    assert np.array_equal(np.asarray(out), np.asarray(colorize(photo, model.eval())))
    l_channel = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():  # the two modes differ, so the equality above means eval mode was used
        assert not torch.equal(model.train().predict_ab(l_channel), model.eval().predict_ab(l_channel))


def test_paper_model_keeps_full_resolution_luminance(tiny_paper, photo):
    out = colorize(photo.convert("L"), tiny_paper)
    assert out.size == photo.size
    assert (lightness(out) - lightness(photo.convert("L"))).abs().mean() < 1.0


def test_working_shape_snaps_to_stride_and_caps_aspect(tiny_unet, tiny_paper):
    assert working_shape(3000, 4000, tiny_unet, 256) == (256, 344)
    h, w = working_shape(1, 5000, tiny_unet, 256)
    assert h % tiny_unet.stride == 0 and w % tiny_unet.stride == 0
    assert w <= 256 * MAX_ASPECT
    assert working_shape(3000, 4000, tiny_paper, 256) == (120, 120)


def test_tiny_and_strip_images(model):
    assert colorize(Image.new("L", (1, 1), 90), model).size == (1, 1)
    assert colorize(Image.new("L", (5000, 1), 90), model).size == (5000, 1)


def test_unreadable_inputs_raise_one_clear_error(tmp_path, model):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    truncated = tmp_path / "truncated.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:200])
    for path, reason in [(empty, "empty"), (text, "not an image"), (truncated, "truncated"), (tmp_path / "missing.png", "no such file")]:
        with pytest.raises(ImageLoadError, match=reason) as info:
            colorize(path, model)
        assert str(path) in str(info.value)


def test_a_jpeg_cut_inside_its_header_reads_as_one_cut_in_its_data(tmp_path, model, photo_paths):
    """Review s4, 12e: 300 bytes of a photo's JPEG said "cannot be read (OSError: Truncated File Read)",
    half of it "truncated or corrupt image data": the same damage, now the same words."""
    data = photo_paths[0].read_bytes()
    for length in (300, len(data) // 2):
        path = tmp_path / f"cut_{length}.jpg"
        path.write_bytes(data[:length])
        with pytest.raises(ImageLoadError, match=r"truncated or corrupt image data") as info:
            colorize(path, model)
        assert str(info.value).startswith(f"{path}: "), info.value


def test_bytes_paths_are_read_as_paths(tmp_path, tiny_unet, photo_paths):
    """Review s4, 12b: colorize(b"grandma.jpg") said "<array ? ?>: expected a path ..., got int"."""
    import os

    result = colorize(os.fsencode(photo_paths[0]), tiny_unet, size=32)
    assert result.size == Image.open(photo_paths[0]).size
    missing = os.fsencode(tmp_path / "grandma.jpg")
    with pytest.raises(ImageLoadError, match=r"grandma\.jpg: no such file$"):
        colorize(missing, tiny_unet)
    with pytest.raises(ImageLoadError, match=r"^not a file path .*io\.BytesIO"):
        colorize(photo_paths[0].read_bytes(), tiny_unet)  # a file's contents, not its name


@pytest.mark.parametrize("options, message", [
    ({"saturation": float("nan")}, "saturation must be a finite number >= 0, got nan"),
    ({"saturation": float("inf")}, "saturation must be a finite number >= 0, got inf"),
    ({"saturation": -1.0}, "saturation must be a finite number >= 0, got -1.0"),
    ({"vividness": float("nan")}, "vividness must be in [0, 1], got nan"),
    ({"batch_size": float("nan")}, "batch_size must be a whole number >= 1, got nan"),
    ({"max_pixels": float("nan")}, "max_pixels must be >= 1, got nan"),
])
def test_out_of_range_and_non_finite_options_are_refused_up_front(photo_paths, tiny_unet, monkeypatch, options, message):
    """Review s4, 1: a NaN or inf saturation got past `saturation < 0` and ended in an IndexError;
    a NaN max_pixels was no limit at all. Each is the package's own error, before any photo is read."""
    from colorgan_hf import ColorGANError, pipeline

    monkeypatch.setattr(pipeline, "load_image", lambda *args, **kwargs: pytest.fail("a photo was read"))
    with pytest.raises(ColorGANError) as info:
        colorize(photo_paths[0], tiny_unet, **options)
    assert str(info.value) == message and isinstance(info.value, ValueError)


@pytest.mark.parametrize("options, message", [
    ({"saturation": "2"}, "saturation must be a finite number >= 0, got '2' (str)"),
    ({"saturation": True}, "saturation must be a finite number >= 0, got True (bool)"),
    ({"vividness": "0.5"}, "vividness must be in [0, 1], got '0.5' (str)"),
    ({"batch_size": 2.5}, "batch_size must be a whole number >= 1, got 2.5"),
    ({"batch_size": "8"}, "batch_size must be a whole number >= 1, got '8' (str)"),
    ({"max_pixels": "100"}, "max_pixels must be >= 1, got '100' (str)"),
    ({"size": "256"}, "size must be a whole number, got '256' (str)"),
    ({"size": 256.5}, "size must be a whole number, got 256.5"),
    ({"size": None}, "size must be a whole number, got None (NoneType)"),
])
def test_options_of_the_wrong_type_are_refused_up_front(photo_paths, tiny_unet, monkeypatch, options, message):
    """QA 4: saturation="2" and batch_size=2.5 were raw TypeErrors from deep inside; each is the
    package's own OptionError, naming the option, before any photo is read."""
    from colorgan_hf import OptionError, pipeline

    monkeypatch.setattr(pipeline, "load_image", lambda *args, **kwargs: pytest.fail("a photo was read"))
    with pytest.raises(OptionError) as info:
        colorize(photo_paths[0], tiny_unet, **options)
    assert str(info.value) == message


def test_a_size_out_of_range_is_an_option_error(photo_paths, tiny_unet):
    from colorgan_hf import OptionError

    with pytest.raises(OptionError, match="size must be between the model's stride 8 and 2048, got 4"):
        colorize(photo_paths[0], tiny_unet, size=4)


def test_numpy_integers_are_taken_for_count_batch_size_and_size(photo_paths, tiny_unet):
    """QA 4: suggest_hints(p, count=np.int64(3)) was refused; a count from an array's arithmetic is a count."""
    from colorgan_hf import suggest_hints

    spots = suggest_hints(photo_paths[0], tiny_unet, np.int64(3), size=np.int32(32))
    assert spots == suggest_hints(photo_paths[0], tiny_unet, 3, size=32) and len(spots) == 3
    assert all(type(v) is int for spot in spots for v in spot)
    outs = colorize(photo_paths[:3], tiny_unet, size=np.int64(32), batch_size=np.int64(2), max_pixels=np.int64(10**8))
    assert [o.size for o in outs] == [Image.open(p).size for p in photo_paths[:3]]
    # A whole number as a float (a division, a UI slider) is that number; 32.5 is not a size.
    halved = colorize(photo_paths[0], tiny_unet, size=64 / 2, batch_size=2.0)
    assert np.array_equal(np.asarray(halved), np.asarray(colorize(photo_paths[0], tiny_unet, size=32)))
    with pytest.raises(OptionError, match="size must be a whole number, got 32.5"):
        colorize(photo_paths[0], tiny_unet, size=32.5)


def test_file_objects_are_one_photo_named_by_their_name(tmp_path, tiny_unet, photo_paths):
    """QA 1: colorize(io.BytesIO(png)) and colorize(open(p, "rb")) iterated the file line by line and
    said "'\\udc89PNG\\r\\n: no such file'". A binary file object is one photo, as PIL.Image.open takes it."""
    path = photo_paths[0]
    expected = np.asarray(colorize(path, tiny_unet, size=32))
    assert np.array_equal(np.asarray(colorize(io.BytesIO(path.read_bytes()), tiny_unet, size=32)), expected)
    with open(path, "rb") as handle:
        handle.read(100)  # read from the start whatever the position
        assert np.array_equal(np.asarray(colorize(handle, tiny_unet, size=32)), expected)
    with open(path, "rb") as handle:  # a list of file objects is a batch of them
        assert [o.size for o in colorize([handle, io.BytesIO(path.read_bytes())], tiny_unet, size=32)] == [Image.open(path).size] * 2
    with pytest.raises(ImageLoadError, match=r"^<file object BytesIO>: not an image file"):
        colorize(io.BytesIO(b"just some text"), tiny_unet)
    notes = tmp_path / "notes.png"
    notes.write_text("not a photo")
    with open(notes, "rb") as handle, pytest.raises(ImageLoadError, match=rf"^{notes}: not an image file"):
        colorize(handle, tiny_unet)
    with open(path) as handle, pytest.raises(ImageLoadError, match=rf"^{path}: file opened in text mode.*\"rb\""):
        colorize(handle, tiny_unet)
    with open(path, "rb") as handle:
        pass  # closed on leaving
    with pytest.raises(ImageLoadError, match=rf"^{path}: the file object is closed"):
        colorize(handle, tiny_unet)


def test_an_iterable_of_photos_is_a_batch_but_a_tensor_or_none_is_refused(photo_paths, tiny_unet):
    """QA 1: a torch tensor was iterated into (40, 60) rows, None was a TypeError "'NoneType' object
    is not iterable". A tuple, a generator or a glob is a batch as a list is (as it always was)."""
    from colorgan_hf import suggest_hints

    sizes = [Image.open(p).size for p in photo_paths[:2]]
    for photos in (tuple(photo_paths[:2]), (p for p in photo_paths[:2]), map(str, photo_paths[:2])):
        outs = colorize(photos, tiny_unet, size=32)
        assert isinstance(outs, list) and [o.size for o in outs] == sizes
    for function in (colorize, suggest_hints):
        with pytest.raises(ImageLoadError, match=r"^expected a path, PIL image, numpy array or binary file object, got NoneType$"):
            function(None, tiny_unet)
        with pytest.raises(ImageLoadError, match=r"^<tensor torch\.float32 \(3, 40, 60\)>: .*got a torch tensor"):
            function(torch.rand(3, 40, 60), tiny_unet)
        with pytest.raises(ImageLoadError, match=r"got dict: for several photos pass a list$"):
            function({"x": 1}, tiny_unet)
    with pytest.raises(TypeError, match="one photo"):
        suggest_hints(tuple(photo_paths[:2]), tiny_unet)


def test_float_arrays_outside_0_1_are_refused_not_clipped(photo, tiny_unet):
    """QA 2: a float array in 0-255 was clipped to [0, 1] without a word: an almost white photo.
    The README takes float arrays in [0, 1]; outside it (beyond rounding) is an error saying what to do."""
    gray = np.asarray(photo.convert("L"))
    expected = np.asarray(colorize(gray, tiny_unet, size=32), dtype=np.int16)
    assert np.abs(np.asarray(colorize(gray / 255.0, tiny_unet, size=32), dtype=np.int16) - expected).max() <= 1
    nudged = (gray / 255.0).astype(np.float32)
    nudged[0, 0] = 1.0005  # a hair over: arithmetic, not another range
    assert colorize(nudged, tiny_unet, size=32).size == photo.size
    for array, values in [(gray.astype(np.float64), r"from \d+ to 2\d\d"), (gray / 255.0 - 0.5, r"from -0\.\d+ to")]:
        with pytest.raises(ImageLoadError, match=rf"^<array float64 .*>: float pixels must be in \[0, 1\], got values {values}.*divide 8-bit values by 255"):
            colorize(array, tiny_unet)


@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "uint32"])
def test_other_integer_arrays_are_8_bit_within_0_255_and_refused_outside(photo, tiny_unet, dtype):
    """QA 2: int32/int64/int16 arrays were divided by 255 whatever their values (a 16-bit one came out white)."""
    rgb = np.asarray(photo)
    expected = np.asarray(colorize(rgb, tiny_unet, size=32))
    assert np.array_equal(np.asarray(colorize(rgb.astype(dtype), tiny_unet, size=32)), expected)
    sixteen = rgb.astype(dtype) * 4  # 10-bit, say: within every one of these types
    with pytest.raises(ImageLoadError, match=rf"^<array {dtype} .*>: {dtype} pixels are read as 8-bit and must be in 0-255, "
                                             r"got values from \d+ to \d+: pass 16-bit pixels as uint16"):
        colorize(sixteen, tiny_unet)
    if dtype.startswith("int"):
        with pytest.raises(ImageLoadError, match="must be in 0-255, got values from -1 to"):
            colorize(rgb.astype(dtype) - 1, tiny_unet)


def test_pixel_limit_refuses_before_decoding(tmp_path, model):
    path = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(path)
    with pytest.raises(ImageLoadError, match="over the limit"):
        colorize(path, model, max_pixels=10_000)


def test_shipped_paper_model_loads_and_colorizes_at_full_size(photo):
    paper = load_default("paper")
    assert paper.architecture == "paper" and paper.input_size == 120
    out = colorize(photo.convert("L"), paper)
    assert out.size == photo.size


PEAK_SCRIPT = """
import resource, sys
import numpy as np
from PIL import Image
from colorgan_hf import colorize, load_default
model = load_default()
rng = np.random.default_rng(0)
Image.fromarray(rng.integers(0, 256, (2400, 3600, 3), dtype=np.uint8)).save(sys.argv[1], quality=90)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = colorize(sys.argv[1], model)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - base) * 1024 / (out.width * out.height))
"""
# What the demo's memory bound (README) is built on: colorize's peak above the loaded model.
COLORIZE_BYTES_PER_PIXEL = 20


def test_colorize_memory_per_pixel_is_bounded(tmp_path):
    """An 8.6 MP colour photo, in a fresh process: the peak memory above the loaded model stays under
    COLORIZE_BYTES_PER_PIXEL bytes a pixel (it was 34: lightness indexed the whole photo with int64, and the
    full-size chroma was held at once)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / "big.jpg")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    per_pixel = float(result.stdout.strip().splitlines()[-1])
    assert per_pixel < COLORIZE_BYTES_PER_PIXEL, f"{per_pixel:.1f} bytes a pixel"


def test_banded_chroma_upsampling_equals_interpolate():
    import torch.nn.functional as F

    from colorgan_hf.pipeline import BAND_ROWS, _upsample_rows

    for h, w, height, width in [(8, 8, 37, 53), (64, 96, 1000, 1500), (5, 7, 5, 7), (16, 16, 8, 8), (2, 2, 700, 3)]:
        small = torch.randn(1, 2, h, w)
        reference = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0]
        columns = F.interpolate(small, size=(h, width), mode="bilinear", align_corners=False)[0]
        bands = [_upsample_rows(columns, top, min(top + BAND_ROWS, height), height) for top in range(0, height, BAND_ROWS)]
        assert torch.allclose(torch.cat(bands, dim=1), reference, atol=1e-4)


@pytest.mark.parametrize("size", [(481, 321), (150, 150), (3000, 2000)])
def test_working_lightness_is_what_the_pair_sets_were_resized_with(size):
    """The network's input at the working size matches training's PIL bicubic resize.

    The default lost about 0.45 dB on held-out training photos at working sizes 192 and 224
    when a softer bilinear resize fed it.
    """
    import torch.nn.functional as F

    from colorgan_hf.color import lightness
    from colorgan_hf.data import resize_image
    from colorgan_hf.images import load_image
    from colorgan_hf.pipeline import working_lightness

    rng = np.random.default_rng(0)
    # Texture at several scales, as photos have: sharp detail is where the filters differ.
    coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 8, size[0] // 8), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    fine = rng.integers(-40, 41, (size[1], size[0]))
    photo = Image.fromarray(np.clip(np.asarray(coarse, dtype=np.int64) + fine, 0, 255).astype(np.uint8)).convert("RGB")
    trained = lightness(load_image(resize_image(photo, 256, "short_side")).pixels)[None]
    l_full = lightness(load_image(photo).pixels)[None]
    shape = tuple(trained.shape[2:])
    ours = working_lightness(l_full, shape)
    softer = F.interpolate(l_full, size=shape, mode="bilinear", antialias=True, align_corners=False)
    error = (ours - trained).abs().mean().item()
    assert error < 0.5 * (softer - trained).abs().mean().item()
    assert error < 1.5  # L* units, of 100: the rest is resizing L rather than 8-bit sRGB


def test_working_lightness_stays_in_range_at_hard_edges():
    from colorgan_hf.pipeline import working_lightness

    checker = torch.zeros(1, 1, 40, 40)
    checker[..., ::2, ::2] = 100.0
    checker[..., 1::2, 1::2] = 100.0
    for shape in [(256, 256), (16, 16), (57, 31)]:
        out = working_lightness(checker, shape)
        assert out.shape == (1, 1, *shape) and out.min() >= 0.0 and out.max() <= 100.0


def test_working_lightness_on_a_huge_reduction_keeps_a_ramp():
    from colorgan_hf.pipeline import MAX_ANTIALIAS_FACTOR, working_lightness

    # A 9,600-row strip to 16 rows: past the factor where the antialiasing filter alone would be too wide.
    rows = torch.linspace(0.0, 100.0, 9600)[None, None, :, None].expand(1, 1, 9600, 40).contiguous()
    assert 9600 > MAX_ANTIALIAS_FACTOR * 16
    out = working_lightness(rows, (16, 8))
    assert out.shape == (1, 1, 16, 8)
    # Each output row is the mean of its band of input rows: a ramp stays a ramp.
    expected = torch.linspace(0.0, 100.0, 9600).reshape(16, -1).mean(dim=1)
    assert torch.allclose(out[0, 0, :, 0], expected, atol=1.0)


def test_auto_contrast_colours_a_faded_photo_as_its_unfaded_self(model, photo):
    """A faded print (its tones squeezed into the middle) shown as it is gets other colours than the same photo with
    its blacks and whites; auto_contrast stretches what the network sees back, so it gets nearly the unfaded photo's
    colours, while the output keeps the faded photo's own lightness."""
    gray = photo.convert("L")
    faded = Image.fromarray((60 + 0.5 * np.asarray(gray, dtype=np.float32)).round().astype(np.uint8))
    plain = colorize(faded, model)
    stretched = colorize(faded, model, auto_contrast=True)
    # The fade is linear, so the stretch undoes it (to 8-bit rounding): the network sees the gray photo stretched.
    off_stretched = (ab_of(stretched) - ab_of(colorize(gray, model, auto_contrast=True))).norm(dim=0).mean().item()
    off_plain = (ab_of(plain) - ab_of(colorize(gray, model))).norm(dim=0).mean().item()
    assert off_stretched < 1.5 and off_plain > 5 * off_stretched, (off_plain, off_stretched)
    # The lightness is the faded photo's (a vivid colour at a light tone may leave the sRGB gamut: the median, not the max).
    assert (lightness(stretched) - lightness(faded)).abs().median() < 0.5


def test_stretch_lightness_maps_the_cutoffs_to_black_and_white_and_leaves_a_flat_photo(tiny_unet):
    from colorgan_hf.pipeline import AUTO_CONTRAST_CUTOFF, stretch_lightness

    ramp = torch.linspace(30.0, 70.0, 10_000).reshape(1, 1, 100, 100)
    out = stretch_lightness(ramp)
    assert out.min() == 0 and out.max() == 100
    assert (out == 0).float().mean() == pytest.approx(AUTO_CONTRAST_CUTOFF, abs=2e-4)
    assert torch.all(out.flatten()[1:] >= out.flatten()[:-1]), "the order of the tones is kept"
    flat = torch.full((1, 1, 8, 8), 40.0)
    assert torch.equal(stretch_lightness(flat), flat)
    card = Image.new("L", (64, 48), 120)
    assert np.array_equal(np.asarray(colorize(card, tiny_unet, auto_contrast=True)), np.asarray(colorize(card, tiny_unet)))


def test_bench_faded_scores_the_colours_and_auto_contrast_undoes_a_linear_fade(tmp_path, photo_paths, capsys):
    """bench/faded.py (the README's "Faded photos" table): a fade is a linear map of L, which auto_contrast undoes, so
    its rows come out (nearly) alike whatever the fade, while a strong fade shown as it is costs colour accuracy."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_faded", Path(__file__).resolve().parents[1] / "bench" / "faded.py")
    faded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faded)
    for path in photo_paths[:3]:
        Image.open(path).convert("RGB").save(tmp_path / f"{path.stem}.png")
    out = tmp_path / "faded.json"
    result = faded.main(faded.parse_args(["--data", str(tmp_path), "--json", str(out)]))
    rows = result["rows"]
    assert result["images"] == 3 and json.loads(out.read_text())["rows"] == rows
    stretched = [rows[fade]["auto_contrast"]["ciede2000"] for fade in faded.FADES]
    assert max(stretched) - min(stretched) < 0.3, stretched
    assert rows["strong fade"]["as is"]["ciede2000"] > rows["strong fade"]["auto_contrast"]["ciede2000"] + 0.5, rows
    assert "strong fade  auto_contrast" in capsys.readouterr().out

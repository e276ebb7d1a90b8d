"""Colour hints (issue 17): parsing and its errors, the propagation's obedience and locality,
strokes and masks, full resolution, the CLI's --hints, and the demo's brush in Chromium."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan_hf import ColorGANError, colorize, load_default
from colorgan_hf.color import rgb_to_lab
from colorgan_hf.hints import (HintError, MaskHint, PointHint, StrokeHint, check_hints, layer_hints, load_hints_file,
                               parse_color, parse_hints)
from colorgan_hf.metrics.functional import ciede2000_map

# Colours that the bands they are painted on can show at their own lightness (a hint keeps
# the photo's L: a saturated red cannot be shown at L* 80, it is clipped to the sRGB gamut).
RED = (200, 30, 40)  # on the mid-gray band
GREEN = (40, 150, 60)  # on the light or the mid-gray band
DARK_RED = (90, 20, 20)  # on the dark band
SIZE = 128  # a small working size keeps the tests fast; the propagation scales with it


@pytest.fixture(scope="module")
def model():
    return load_default()


def three_regions(height: int = 192, width: int = 384) -> np.ndarray:
    """A gray photo of three vertical bands of very different lightness (light | dark | mid)."""
    photo = np.empty((height, width), np.uint8)
    third = width // 3
    photo[:, :third], photo[:, third : 2 * third], photo[:, 2 * third :] = 200, 40, 120
    return photo


def lab_of(image: Image.Image) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float()[None] / 255.0)


def de_to_hint(lab: torch.Tensor, color: tuple[int, int, int]) -> torch.Tensor:
    """CIEDE2000 of each pixel from ``color``'s chroma at the pixel's own lightness (what a hint sets)."""
    target_ab = rgb_to_lab(torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1) / 255.0)[:, 1:]
    return ciede2000_map(lab, torch.cat([lab[:, :1], target_ab.expand(-1, -1, *lab.shape[2:])], dim=1))[0]


# ------------------------------------------------------------------------------- parsing


def test_colour_forms_agree():
    assert parse_color("#aa2233") == parse_color("#A23") == parse_color([170, 34, 51]) == parse_color((170.0, 34, 51)) == (170, 34, 51)
    assert parse_color("red") == (255, 0, 0)
    assert parse_color("rgb(1, 2, 3)") == (1, 2, 3)


def test_hint_forms_parse(tmp_path):
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:9] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    hints = parse_hints([
        {"x": 3, "y": 4, "color": "#ff0000"},
        {"points": [[1, 1], [5, 6]], "width": 3, "color": [0, 255, 0]},
        {"mask": mask, "color": "blue"},
        PointHint(1.5, 2.5, (1, 2, 3)),
    ])
    assert isinstance(hints[0], PointHint) and hints[0].color == (255, 0, 0)
    assert isinstance(hints[1], StrokeHint) and hints[1].points == ((1.0, 1.0), (5.0, 6.0)) and hints[1].width == 3
    assert isinstance(hints[2], MaskHint) and hints[2].mask.sum() == 18
    assert hints[3] == PointHint(1.5, 2.5, (1, 2, 3))
    (tmp_path / "h.json").write_text(json.dumps({"hints": [{"mask": "m.png", "color": "#00f"}]}))
    loaded = load_hints_file(tmp_path / "h.json")  # mask paths relative to the file
    assert np.array_equal(loaded[0].mask, mask)
    check_hints(hints, 20, 10)


@pytest.mark.parametrize("hints, words", [
    ([{"x": 1, "y": 1, "color": "#zz0000"}], ["hint 0", "not a colour"]),
    ([{"x": 1, "y": 1, "color": "red"}, {"x": 1, "y": 1, "color": [1, 2]}], ["hint 1", "not a colour"]),
    ([{"x": 1, "y": 1, "color": [300, 0, 0]}], ["hint 0", "0-255"]),
    ([{"x": 1, "color": "red"}], ["hint 0 (point)", "missing y"]),
    ([{"x": 1, "y": 2, "colour": "red"}], ["hint 0 (point)", "missing color"]),
    ([{"x": 1, "y": 2, "color": "red", "size": 3}], ["hint 0 (point)", "unknown key", "size"]),
    ([{"x": "a", "y": 2, "color": "red"}], ["hint 0 (point) x", "not a finite number"]),
    ([{"points": [], "color": "red"}], ["hint 0 (stroke)", "non-empty"]),
    ([{"points": [[1, 2], [3]], "color": "red"}], ["hint 0 (stroke) point 1", "not a point"]),
    ([{"points": [[1, 2]], "width": 0, "color": "red"}], ["hint 0 (stroke) width", "> 0"]),
    ([{"mask": np.zeros((4, 4)), "color": "red"}], ["hint 0 (mask)", "no pixel"]),
    # An int beyond a float's range (Python's json reads such numbers as ints) is no OverflowError.
    ([{"x": 10**400, "y": 10, "color": "red"}], ["hint 0 (point) x", "too large"]),
    ([{"x": 1, "y": 1, "color": "red", "radius": 10**400}], ["hint 0 (point) radius", "too large"]),
    ([{"points": [[1, 10**5000]], "color": "red"}], ["hint 0 (stroke) point 0 y", "an integer of", "too large"]),
    ([{"x": 1, "y": 1, "color": [10**400, 0, 0]}], ["hint 0 (point) color", "0-255"]),
    # NaN != 0: a NaN pixel would count as set.
    ([{"mask": np.full((4, 4), np.nan), "color": "red"}], ["hint 0 (mask)", "NaN or infinite"]),
    ([{"x": 1, "y": 1, "color": "red"}, {"mask": np.where(np.eye(4, dtype=bool), 1.0, np.nan), "color": "red"}],
     ["hint 1 (mask)", "NaN or infinite"]),
    ([{"mask": np.array([[0.0, np.inf]], np.float32), "color": "red"}], ["hint 0 (mask)", "NaN or infinite"]),
    ([{"mask": "no_such_mask.png", "color": "red"}], ["hint 0 (mask)", "cannot read the mask"]),
    ([{"color": "red"}], ["hint 0", "cannot tell its kind"]),
    (["red"], ["hint 0", "expected a point"]),
    ("red", ["must be a list"]),
])
def test_bad_hints_are_named(hints, words):
    with pytest.raises(HintError) as info:
        parse_hints(hints)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert isinstance(info.value, ColorGANError)


def test_hints_files_with_a_bom_huge_numbers_or_deep_nesting(tmp_path, model):
    hints = [{"x": 3, "y": 4, "color": "red"}]
    path = tmp_path / "notepad.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(hints).encode())  # Notepad's UTF-8 starts with a byte-order mark
    assert load_hints_file(path) == [PointHint(3, 4, (255, 0, 0))]
    for text, words in (
        ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
        ('[{"x": ' + "1" * 5000 + ', "y": 1, "color": "red"}]', ["not valid JSON"]),  # over Python's 4300 digits
        ('[{"x": 1' + "0" * 400 + ', "y": 1, "color": "red"}]', ["hint 0 (point) x", "too large"]),
    ):
        path.write_text(text)
        with pytest.raises(HintError) as info:
            load_hints_file(path)
        for word in [str(path), *words]:
            assert word in str(info.value), str(info.value)
    with pytest.raises(HintError, match="hint 0 .point. x: .* too large"):
        colorize(three_regions(40, 60), model, size=SIZE, hints=[{"x": 10**400, "y": 10, "color": "red"}])


def test_a_huge_stroke_width_or_radius_covers_the_photo():
    """Bounded by the photo's diagonal: ImageDraw overflowed at 2**31 (and took minutes over 1e9)."""
    from colorgan_hf.hints import footprints

    hints = [StrokeHint(((1.0, 1.0), (5.0, 5.0)), RED, 1e300), StrokeHint(((99.0, 0.0), (98.0, 0.0)), RED, 2.0**64),
             PointHint(0, 99, RED, radius=1e300)]
    assert footprints(hints, (100, 120), (50, 60)).all()
    # A width of the diagonal from a corner still covers all; a modest one is drawn as before.
    assert footprints([PointHint(0, 0, RED, radius=math.hypot(100, 120))], (100, 120), (50, 60)).all()
    assert footprints([StrokeHint(((60.0, 50.0),), RED, 20.0)], (100, 120), (50, 60)).sum() < 100
    check_hints(parse_hints([{"points": [[1, 1]], "width": 2**40, "color": "red"}]), 120, 100)


def square_mask(height: int = 24, width: int = 32) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[8:16, 8:24] = True
    return mask


def mask_image(kind: str, mask: np.ndarray) -> Image.Image:
    """``mask`` saved as paint programs and scripts save masks."""
    if kind in ("opaque", "cut_out"):
        rgba = np.zeros((*mask.shape, 4), np.uint8)
        if kind == "opaque":  # a white shape on black, fully opaque: the alpha says nothing, the brightness does
            rgba[..., 3] = 255
            rgba[mask, :3] = 255
        else:  # an alpha that varies: the opaque pixels are the mask, however dark
            rgba[mask, 3] = 255
        return Image.fromarray(rgba)
    if kind in ("float", "float_overshoot"):  # a 0/1 float TIFF (mode F)
        values = mask.astype(np.float32)
        if kind == "float_overshoot":  # resampled: a hair over 1, still the 0-1 range
            values[mask] = 1.0005
        return Image.fromarray(values)
    sixteen = mask.astype(np.uint16) * 65535  # 16-bit, with a band of 30% gray: not brighter than mid-gray
    sixteen[18:22] = round(0.3 * 65535)
    return Image.fromarray(sixteen)


@pytest.mark.parametrize("kind, suffix", [("opaque", "png"), ("cut_out", "png"), ("float", "tif"), ("float_overshoot", "tif"),
                                          ("sixteen", "png")])
def test_mask_images_are_read_as_saved(tmp_path, kind, suffix):
    mask = square_mask()
    image = mask_image(kind, mask)
    image.save(tmp_path / f"mask.{suffix}")
    (from_file,) = parse_hints([{"mask": f"mask.{suffix}", "color": "red"}], base_dir=tmp_path)
    assert np.array_equal(from_file.mask, mask)
    (given,) = parse_hints([{"mask": image, "color": "red"}])  # a PIL image, the same
    assert np.array_equal(given.mask, mask)


def test_a_float_mask_image_with_nan_is_refused(tmp_path):
    nan = square_mask().astype(np.float32)
    nan[0, 0] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    with pytest.raises(HintError, match="hint 0 .mask.: the mask image holds NaN"):
        parse_hints([{"mask": tmp_path / "nan.tif", "color": "red"}])


def test_a_mask_jpeg_is_turned_by_its_exif_orientation(tmp_path):
    """Hint positions are in the photo after its EXIF rotation: a mask file's own orientation tag is applied too."""
    stored = square_mask()  # as the pixels lie in the file: 32 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(stored.astype(np.uint8) * 255).save(tmp_path / "mask.jpg", quality=95, exif=exif)
    (hint,) = parse_hints([{"mask": "mask.jpg", "color": "red"}], base_dir=tmp_path)
    assert np.array_equal(hint.mask, np.rot90(stored, k=-1))
    check_hints([hint], 24, 32)


def test_hints_off_the_photo_are_named(model):
    photo = three_regions(40, 60)
    for hints, words in (
        ([{"x": 10, "y": 10, "color": "red"}, {"x": 60, "y": 10, "color": "red"}], ["hint 1 (point)", "(60, 10) is outside", "60x40"]),
        ([{"points": [[0, 0], [5, -1]], "color": "red"}], ["hint 0 (stroke) point 1", "outside"]),
        ([{"mask": np.ones((5, 5), bool), "color": "red"}], ["hint 0 (mask)", "5x5", "60x40"]),
    ):
        with pytest.raises(HintError) as info:
            colorize(photo, model, size=SIZE, hints=hints)
        for word in words:
            assert word in str(info.value), str(info.value)


def test_hints_with_a_list_of_photos_are_refused(model):
    with pytest.raises(HintError, match="one photo"):
        colorize([three_regions(32, 32)] * 2, model, hints=[{"x": 1, "y": 1, "color": "red"}])


def test_no_hints_is_the_plain_result(model, photo):
    plain = np.asarray(colorize(photo, model, size=SIZE))
    assert np.array_equal(plain, np.asarray(colorize(photo, model, size=SIZE, hints=None)))
    assert np.array_equal(plain, np.asarray(colorize(photo, model, size=SIZE, hints=[])))


# ------------------------------------------------------------------------------- behaviour


def test_a_point_colours_its_region_and_leaves_a_far_one(model):
    photo = three_regions()
    plain = lab_of(colorize(photo, model, size=SIZE))
    hinted = lab_of(colorize(photo, model, size=SIZE, hints=[{"x": 320, "y": 96, "color": RED}]))
    # The 15x15 patch around the point takes the hint's colour (at the photo's own lightness)...
    assert de_to_hint(hinted, RED)[89:104, 313:328].mean() < 3.0
    # ...the photo keeps its lightness...
    assert (hinted[0, 0] - plain[0, 0]).abs().max() < 1.0
    # ...and the far band, across two lightness edges, barely moves.
    assert ciede2000_map(plain, hinted)[0][:, :112].mean() < 1.0


def test_a_stroke_colours_its_band_and_stops_at_the_edge(model):
    photo = three_regions()
    plain = lab_of(colorize(photo, model, size=SIZE))
    hinted = lab_of(colorize(photo, model, size=SIZE, hints=[{"points": [[60, 20], [60, 170]], "width": 6, "color": GREEN}]))
    assert de_to_hint(hinted, GREEN)[:, 40:80].mean() < 3.0  # the light band, along the stroke
    assert ciede2000_map(plain, hinted)[0][:, 272:].mean() < 1.0  # the mid-gray band, beyond the dark one


def test_a_mask_and_two_colours(model):
    photo = three_regions()
    mask = np.zeros(photo.shape, bool)
    mask[60:130, 290:360] = True
    result = lab_of(colorize(photo, model, size=SIZE, hints=[{"mask": mask, "color": GREEN}, {"x": 192, "y": 30, "color": DARK_RED}]))
    assert de_to_hint(result, GREEN)[60:130, 290:360].mean() < 3.0
    assert de_to_hint(result, DARK_RED)[23:38, 185:200].mean() < 3.0


def test_full_resolution_output_and_coordinates(model):
    # A 1200x800 photo: the output keeps its size, and a thin stroke far thinner than a
    # working-resolution pixel still counts, where it was drawn.
    photo = np.kron(three_regions(8, 12), np.ones((100, 100), np.uint8))
    result = colorize(photo, model, size=SIZE, hints=[{"points": [[900, 700], [1100, 700]], "width": 1, "color": RED}])
    assert result.size == (1200, 800)
    assert de_to_hint(lab_of(result), RED)[693:708, 950:1050].mean() < 3.0


def test_layer_hints_group_painted_colours():
    layer = np.zeros((20, 30, 4), np.uint8)
    layer[2:6, 2:6] = (*RED, 255)
    layer[10:12, 10:20] = (*GREEN, 255)
    layer[6, 2:6] = (*RED, 60)  # an anti-aliased fringe: not a hint
    layer[7, 2:6] = (RED[0] - 1, RED[1], RED[2], 200)  # a variant of red, kept as one more colour
    hints = layer_hints(layer, max_colors=2)
    assert sorted(h.color for h in hints) == sorted([RED, GREEN])
    by_color = {h.color: h.mask for h in hints}
    assert by_color[RED].sum() == 20 and by_color[GREEN].sum() == 20
    assert layer_hints(np.zeros((4, 4, 4), np.uint8)) == []


# ------------------------------------------------------------------------------- CLI


def test_cli_hints_round_trip(tmp_path):
    from colorgan_hf.cli import main

    photo = tmp_path / "bands.png"
    Image.fromarray(three_regions()).save(photo)
    mask = np.zeros((192, 384), np.uint8)
    mask[60:130, 20:100] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({"hints": [{"x": 320, "y": 96, "color": "#c81e28"},
                                           {"mask": "mask.png", "color": [40, 150, 60]}]}))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--hints", str(hints), "--size", str(SIZE)]) == 0
    result = Image.open(tmp_path / "out" / "bands_color.png")
    assert result.size == (384, 192)
    lab = lab_of(result)
    assert de_to_hint(lab, RED)[89:104, 313:328].mean() < 3.0
    assert de_to_hint(lab, GREEN)[60:130, 20:100].mean() < 3.0
    # Hints belong to one photo (two different ones: the same file twice is one job); a bad hints file is one clear line.
    other = tmp_path / "other.png"
    Image.fromarray(three_regions()).save(other)
    assert main(["-q", "colorize", str(photo), str(other), "-o", str(tmp_path / "o2"), "--hints", str(hints)]) == 1
    hints.write_text(json.dumps([{"x": 1000, "y": 1, "color": "red"}]))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "o3"), "--hints", str(hints)]) == 1
    hints.write_text("{not json")
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "o4"), "--hints", str(hints)]) == 1


def test_cli_hint_errors_are_one_line(tmp_path, capsys, caplog):
    from colorgan_hf.cli import main

    photo = tmp_path / "p.png"
    Image.fromarray(three_regions(40, 60)).save(photo)
    hints = tmp_path / "h.json"
    hints.write_text(json.dumps([{"x": 1, "y": 1, "color": "#nothex"}]))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "o"), "--hints", str(hints)]) == 1
    assert "hint 0 (point) color: '#nothex' is not a colour" in capsys.readouterr().err + caplog.text
    hints.write_text(json.dumps([{"x": 100, "y": 1, "color": "red"}]))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "o"), "--hints", str(hints)]) == 1
    assert "p.png: hint 0 (point): (100, 1) is outside the image (60x40" in capsys.readouterr().err + caplog.text


def test_cli_suggest_hints_writes_a_hints_file_to_fill_in(tmp_path, capsys, caplog, model):
    from colorgan_hf import suggest_hints
    from colorgan_hf.cli import main

    photo = tmp_path / "bands.png"
    Image.fromarray(three_regions()).save(photo)
    hints, marked = tmp_path / "spots.json", tmp_path / "spots.png"
    assert main(["-q", "suggest-hints", str(photo), "-n", "3", "--size", str(SIZE), "-o", str(hints), "--marked", str(marked)]) == 0
    printed = [tuple(int(v) for v in line.split("\t")) for line in capsys.readouterr().out.strip().splitlines()[1:]]
    spots = suggest_hints(photo, model, 3, size=SIZE)
    assert [(x, y) for _, x, y in printed] == spots and [n for n, _, _ in printed] == [1, 2, 3]
    assert json.loads(hints.read_text()) == [{"x": x, "y": y, "color": None} for x, y in spots]
    assert Image.open(marked).size == (384, 192)
    # Left unfilled, the file is refused in one line and nothing is written; filled in, it colours each spot's band.
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--hints", str(hints)]) == 1
    assert "hint 0 (point) color: not given: fill in the colour you know at that spot" in capsys.readouterr().err + caplog.text
    assert not (tmp_path / "out" / "bands_color.png").exists()
    hints.write_text(json.dumps([{"x": x, "y": y, "color": "#28963c"} for x, y in spots]))
    assert main(["-q", "colorize", str(photo), "-o", str(tmp_path / "out"), "--hints", str(hints), "--size", str(SIZE)]) == 0
    lab = lab_of(Image.open(tmp_path / "out" / "bands_color.png"))
    for x, y in spots:  # green at each spot, as far as its band's lightness can show it
        assert lab[0, 1, y, x] < -10 and lab[0, 2, y, x] > 5, (x, y, lab[0, :, y, x].tolist())
    # The hints already given (--hints): the spots go elsewhere.
    given = tmp_path / "given.json"
    given.write_text(json.dumps([{"x": spots[0][0], "y": spots[0][1], "color": "#28963c"}]))
    assert main(["-q", "suggest-hints", str(photo), "-n", "2", "--size", str(SIZE), "--hints", str(given)]) == 0
    after = [tuple(int(v) for v in line.split("\t")[1:]) for line in capsys.readouterr().out.strip().splitlines()[1:]]
    assert after == suggest_hints(photo, model, 2, size=SIZE, hints=json.loads(given.read_text())) and spots[0] not in after
    assert main(["-q", "suggest-hints", str(photo), "-n", "0"]) == 1
    assert main(["-q", "suggest-hints", str(photo), "--size", "8"]) == 1
    assert "--size must be between the model's stride 16 and 2048" in capsys.readouterr().err + caplog.text


# ------------------------------------------------------------------------------- the demo, in Chromium


def test_browser_red_stroke_makes_its_region_red(tmp_path):
    pytest.importorskip("gradio_client")
    from test_space import CHROMIUM, CHROMIUM_ARGS, call_api, start_app

    photo = tmp_path / "bands.png"
    Image.fromarray(three_regions(240, 360)).save(photo)
    proc, url, _, log = start_app(tmp_path)
    try:
        # The hints endpoint reads only files uploaded to the app, as the others do.
        for meta in ({}, {"meta": {"_type": "gradio.FileData"}}):
            editor = {"background": {"path": "/etc/passwd", **meta}, "layers": [], "composite": None, "id": None}
            event, data = call_api(url, [editor, 256, 1.0, "default (ours)", False], api_name="colorize_hints")
            assert event == "error" and "passwd" not in data, (event, data)
        if not os.path.exists(CHROMIUM):
            pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
        playwright_api = pytest.importorskip("playwright.sync_api")
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Colour hints").click()
            # On a busy machine the editor can drop a file chosen before its canvas is set up (no
            # upload is even sent): choose it again until the photo replaces the editor's prompt.
            prompt = page.locator("#hints-editor").get_by_text("Upload an image")
            for attempt in range(4):
                with page.expect_file_chooser() as chooser:
                    page.locator("#hints-editor [aria-label='Click to upload or drop files']").first.click()
                chooser.value.set_files(str(photo))
                try:
                    prompt.wait_for(state="hidden", timeout=20_000)
                    break
                except playwright_api.TimeoutError:
                    assert attempt < 3, "the photo never reached the editor"
            canvas = page.locator("#hints-editor canvas").first
            canvas.wait_for(state="visible", timeout=30_000)
            # The editor lays the photo out in steps: wait until the canvas keeps its size (a busy
            # machine can take seconds), so the stroke lands where it is aimed.
            box, last = None, None
            for _ in range(120):
                box = canvas.bounding_box()
                if box and box == last and box["width"] > 100:
                    break
                last = box
                page.wait_for_timeout(250)
            page.wait_for_timeout(500)
            # The photo fills the canvas's width: a red (the brush's default colour) stroke
            # down the middle of the mid-gray right band.
            left, top, width = box["x"], box["y"] + (box["height"] - box["width"] * 240 / 360) / 2, box["width"]
            page.mouse.move(left + width * 5 / 6, top + width * 0.15)
            page.mouse.down()
            for i in range(1, 11):
                page.mouse.move(left + width * 5 / 6, top + width * (0.15 + 0.03 * i))
            page.mouse.up()
            info = page.locator("#hints-info")
            info.get_by_text("1 hint colour").wait_for(timeout=60_000)

            hrefs: list[str] = []

            def result() -> torch.Tensor:
                # The info line and the download link update from one event; under load the link can
                # come a moment later: wait for a new one before reading it. A settings change runs
                # the live update and the button another run: the session's next result replaces
                # (and removes) the one before, so a link that is gone by the time it is read is
                # followed by the newer one.
                link = page.locator("#hints-download a").first
                href, status = None, None
                for _ in range(240):
                    href = link.get_attribute("href") if link.count() else None
                    if href and href not in hrefs:
                        hrefs.append(href)
                        response = page.request.get(href if href.startswith("http") else url + href)
                        status = response.status
                        if response.ok:
                            path = tmp_path / "result.png"
                            path.write_bytes(response.body())
                            return lab_of(Image.open(path))
                    page.wait_for_timeout(250)
                raise AssertionError(f"no new result that could be read (links {hrefs}, last status {status})")

            lab = result()
            assert lab.shape[2:] == (240, 360)
            red_ab = lab[0, 1:, 20:220, 250:350].mean(dim=(1, 2))
            assert red_ab[0] > 25 and red_ab[0] > abs(red_ab[1]), f"the left band is not red: a*b* = {red_ab.tolist()}"
            assert ciede2000_map(lab_of(colorize(three_regions(240, 360))), lab)[0][:, :110].mean() < 1.5  # the far band
            # Hints survive a change of the working size, typed in its box: the result updates by
            # itself (it used to wait for a drag of the slider).
            number = page.locator("#hints-size input[type=number]").first
            number.fill("320")
            number.press("Enter")
            info.get_by_text("1 hint colour(s) at working size 320").wait_for(timeout=60_000)
            lab = result()
            assert lab.shape[2:] == (240, 360)
            assert lab[0, 1, 20:220, 250:350].mean() > 25
            # Clear hints: the result goes back to the model's own colours, by itself (it used to
            # keep the red until the button was pressed).
            page.locator("#hints-clear").click()
            info.get_by_text("0 hint colour(s) at working size 320").wait_for(timeout=60_000)
            assert result()[0, 1, 20:220, 250:350].mean() < 10
            # "Where should I paint?": the photo comes back with the suggested spots ringed, and listed.
            page.locator("#hints-suggest").click()
            page.locator("#hints-spots-info").get_by_text("Paint the colour you know at spot 1 first").wait_for(timeout=60_000)
            page.locator("#hints-spots img").first.wait_for(state="visible", timeout=30_000)
            page.screenshot(path=str(tmp_path / "hints_tab.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.returncode not in (0, -15):
            print(log.read_text()[-2000:])


def test_card_section_goes_before_the_limitations(tiny_unet, tmp_path):
    from colorgan_hf.card import write_card

    section = tmp_path / "hints.md"
    section.write_text("## Colour hints\n\n| hints k | CIEDE2000 |\n| --- | --- |\n| 0 | 11.66 |\n")
    card = write_card(tmp_path / "card.md", tiny_unet, section_files=[section]).read_text()
    assert "## Colour hints" in card and card.index("## Colour hints") < card.index("## Limitations and biases")
    assert "| 0 | 11.66 |" in card


def test_hints_and_auto_contrast_together():
    """A faded photo with hints: auto_contrast changes what the network paints elsewhere, the hinted region still takes
    the hint's colour."""
    faded = (60 + 0.45 * three_regions(120, 180).astype(np.float32)).round().astype(np.uint8)
    hint = [{"x": 150, "y": 60, "color": RED}]
    plain = colorize(faded, hints=hint)
    stretched = colorize(faded, hints=hint, auto_contrast=True)
    assert de_to_hint(lab_of(stretched), RED)[50:70, 140:160].mean() < 3.0
    assert not np.array_equal(np.asarray(plain), np.asarray(stretched))


def test_suggested_spots_are_nested_distinct_inside_and_leave_the_callers_random_state(model):
    from colorgan_hf import suggest_hints

    photo = Image.open(Path(__file__).parent / "data" / "bsds_12003.jpg")
    torch.manual_seed(7)
    expected_draw = torch.rand(4)
    torch.manual_seed(7)
    ten = suggest_hints(photo, model, 10, size=SIZE)
    assert torch.equal(torch.rand(4), expected_draw), "the caller's random numbers are not disturbed"
    assert len(ten) == len(set(ten)) == 10
    assert all(isinstance(x, int) and isinstance(y, int) and 0 <= x < photo.width and 0 <= y < photo.height for x, y in ten)
    assert suggest_hints(photo, model, 4, size=SIZE) == ten[:4], "the best 4 of 10 are the 4 best"
    # Where next: with the first spot's colour given, the spots are the next ones; a hint off the photo is refused.
    assert suggest_hints(photo, model, 3, size=SIZE, hints=[{"x": ten[0][0], "y": ten[0][1], "color": GREEN}]) == ten[1:4]
    with pytest.raises(HintError, match="outside the image"):
        suggest_hints(photo, model, 3, size=SIZE, hints=[{"x": 5000, "y": 1, "color": GREEN}])
    # They are where colorize takes point hints: a hint at each spot is accepted and colours there.
    hinted = lab_of(colorize(photo, model, size=SIZE, hints=[{"x": x, "y": y, "color": GREEN} for x, y in ten[:3]]))
    for x, y in ten[:3]:
        assert de_to_hint(hinted, GREEN)[y, x] < 3


def test_suggested_spots_cover_the_regions_largest_first_and_follow_the_models_doubt():
    from colorgan_hf.hints import suggest_points

    # Three bands of different lightness (light | dark | mid), the first twice as wide as each other.
    l_small = torch.full((1, 64, 128), 50.0)
    l_small[:, :, :64], l_small[:, :, 64:96] = 85.0, 20.0
    def band(x: int) -> int:
        return 0 if x < 64 else 1 if x < 96 else 2

    full = (128, 256)  # the photo is twice the working grid: spots are in its pixels
    spots = suggest_points(l_small, None, full, 3)
    assert band(spots[0][0] // 2) == 0, "with no doubt anywhere, the largest region comes first"
    assert sorted(band(x // 2) for x, _ in spots) == [0, 1, 2], "one spot in each region: a hint reaches its own only"
    doubt = torch.zeros(64, 128)
    doubt[:, 96:] = 1.0  # the model is unsure of the mid band only
    assert band(suggest_points(l_small, doubt, full, 1)[0][0] // 2) == 2
    # A colour already given for the wide band (a mask over it): the first spot goes to another band.
    mask = np.zeros(full, bool)
    mask[:, :128] = True
    assert band(suggest_points(l_small, None, full, 1, [MaskHint(mask, GREEN)])[0][0] // 2) != 0


def test_suggested_spots_are_nested_for_every_count_and_distinct_on_tiny_photos():
    """More than 30 spots used to change the regions and the candidates, so every spot moved; a photo smaller than the
    grid gave one pixel several times."""
    from colorgan_hf.hints import suggest_points

    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    l_small = (50 + 30 * torch.sin(xx / 5) * torch.cos(yy / 7))[None]
    doubt = torch.rand(48, 64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    expected_draw = torch.rand(3)
    torch.manual_seed(3)
    fifty = suggest_points(l_small, doubt, (120, 160), 50)
    assert torch.equal(torch.rand(3), expected_draw), "the caller's random numbers are not disturbed"
    assert len(set(fifty)) == 50 and all(0 <= x < 160 and 0 <= y < 120 for x, y in fifty)
    for count in (1, 30, 31, 40, 49):
        assert suggest_points(l_small, doubt, (120, 160), count) == fifty[:count], count
    # A photo with fewer pixels than asked gives each of them once, still nested.
    gray = torch.full((1, 32, 32), 50.0)
    assert suggest_points(gray, None, (1, 1), 5) == [(0, 0)]
    every = suggest_points(gray, None, (5, 5), 50)
    assert sorted(every) == [(x, y) for x in range(5) for y in range(5)]
    assert suggest_points(gray, None, (5, 5), 12) == every[:12]
    sixteen = suggest_points(gray, None, (16, 16), 50)
    assert len(set(sixteen)) == 50 and suggest_points(gray, None, (16, 16), 31) == sixteen[:31]


@pytest.mark.parametrize("count", [0, -1, 51, 2.5, True, "3"])
def test_suggest_hints_refuses_a_bad_count(model, count):
    from colorgan_hf import suggest_hints

    with pytest.raises(ValueError, match="number of suggested spots must be a whole number from 1 to 50"):
        suggest_hints(three_regions(), model, count, size=SIZE)


def test_bench_hints_scores_suggested_spots_beside_random_ones(photo_paths, model):
    """bench/hints.py --parts suggest (the README's table): both rows at every k, more hints help on these photos,
    and a simulated hint sits where it was asked for."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_hints", Path(__file__).resolve().parents[1] / "bench" / "hints.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run_suggest(photo_paths[:2], model, SIZE, ks=(1, 5), progress=False)
    assert result["images"] == 2 and [row["k"] for row in result["suggested"]] == [row["k"] for row in result["random"]] == [1, 5]
    for name in ("random", "suggested"):
        first, more = result[name]
        assert more["ciede2000"] < first["ciede2000"] and more["psnr"] > first["psnr"], (name, result[name])
    reference = np.asarray(Image.open(photo_paths[0]).convert("RGB"))
    spots = [(h["x"], h["y"]) for h in bench.hints_at(reference, [(3, 4), (10, 2)])]
    assert spots == [(3, 4), (10, 2)]


@pytest.mark.parametrize("side", [120, 4000])
def test_marked_spots_stay_visible_when_the_photo_is_shown_small(side):
    from colorgan_hf.hints import mark_spots

    photo = Image.new("L", (side * 3 // 2, side), 128)
    spots = [(side // 4, side // 2), (side, side // 3)]
    marked = mark_spots(photo, spots)
    assert marked.mode == "RGB" and marked.size == photo.size and photo.getpixel((0, 0)) == 128, "the photo is not drawn on"
    shown = np.asarray(marked.convert("L").resize((600, 400), Image.Resampling.BOX), dtype=np.int16)
    for x, y in spots:  # left of each spot only the ring lies (its number is up and to the right): it still shows
        cx, cy = x * 600 // photo.width, y * 400 // photo.height
        assert np.abs(shown[cy, max(0, cx - 40) : cx] - 128).max() > 60, (side, x, y)

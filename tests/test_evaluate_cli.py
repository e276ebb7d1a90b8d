import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from colorgan_hf.cli import main
from colorgan_hf.evaluation import format_hue_classes, format_table


def copy_photos(tmp_path: Path, paths: list[Path]) -> Path:
    """A folder ``photos`` under ``tmp_path`` holding copies of ``paths``, under their own names."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in paths:
        shutil.copy(path, photos / path.name)
    return photos


def test_evaluate_prints_gray_and_model_rows_and_card_holds_the_numbers(tmp_path, photo_paths, capsys):
    photos = copy_photos(tmp_path, photo_paths[:3])
    result_file = tmp_path / "result.json"

    assert main(["-q", "evaluate", "--data", str(photos), "--size", "128", "--output", str(result_file)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert "3 images" in lines[0]
    assert any(line.startswith("gray ") for line in lines) and any(line.startswith("default ") for line in lines)
    result = json.loads(result_file.read_text())
    default, gray = result["rows"]["default"], result["rows"]["gray"]
    assert gray["colorfulness_ratio"] < 0.05, "the baseline has (almost) no colour"
    assert f"{default['psnr']:.2f}" in next(line for line in lines if line.startswith("default "))
    # The set metrics, pooled over the photos: JSON keys, table columns and the legend under the table.
    for key in ("hue_recall", "hue_precision", "ab_hist", *(f"hue_recall_{c}" for c in ("red", "yellow", "green", "blue", "purple"))):
        assert key in default and key in gray, key
    assert gray["hue_recall"] == 0.0 and gray["ab_hist"] < default["ab_hist"] <= 1.0
    assert "hue rec" in lines[1] and "r/y/g/b/p %" in lines[1] and "hue prec" in lines[1] and "ab hist" in lines[1]
    default_line = next(line for line in lines if line.startswith("default "))
    assert f"{default['hue_recall']:.3f}" in default_line and f"{default['ab_hist']:.3f}" in default_line
    assert lines[-1].startswith("hue rec: ")

    card_path = tmp_path / "card.md"
    assert main(["card", "--eval-json", str(result_file), "-o", str(card_path)]) == 0
    text = card_path.read_text()
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["pipeline_tag"] == "image-to-image" and metadata["library_name"] == "colorgan-hf"
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics["psnr"] == round(default["psnr"], 5)
    assert metrics["ciede2000"] == round(default["ciede2000"], 5)
    assert metrics["b_shift"] == round(default["b_shift"], 5)
    assert metrics["hue_recall"] == round(default["hue_recall"], 5) and metrics["ab_hist"] == round(default["ab_hist"], 5)
    assert f"{default['psnr']:.2f}" in text, "the results table shows the printed figure"
    assert "| hue recall | r/y/g/b/p % | hue precision | ab hist |" in text
    default_row = next(line for line in text.splitlines() if line.startswith("| default |"))
    assert default_row.endswith(f"| {default['hue_recall']:.3f} | {format_hue_classes(default)} | "
                                f"{default['hue_precision']:.3f} | {default['ab_hist']:.3f} |")
    assert "## Training\n\nNot recorded." in text and not list(tmp_path.glob(".card.md*")), "no temporary file left"

    # A result saved before the set metrics existed still makes a card, without their columns.
    old = json.loads(result_file.read_text())
    for row in old["rows"].values():
        for key in [k for k in row if k.startswith(("hue_", "ab_hist"))]:
            del row[key]
    old_file = tmp_path / "old.json"
    old_file.write_text(json.dumps(old))
    assert main(["card", "--eval-json", str(old_file), "-o", str(card_path)]) == 0
    text = card_path.read_text()
    metrics = {m["type"]: m["value"] for m in yaml.safe_load(text.split("---")[1])["model-index"][0]["results"][0]["metrics"]}
    assert "hue_recall" not in metrics and metrics["psnr"] == round(default["psnr"], 5)
    assert "hue recall" not in text and "| model | PSNR dB |" in text
    assert "hue rec" in format_table(old) and "  -  " in format_table(old)


def test_evaluate_json_mode_with_two_models(tmp_path, photo_paths, capsys, tiny_unet):
    tiny_dir = tmp_path / "tiny"
    tiny_unet.save_pretrained(tiny_dir)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "a.jpg")
    assert main(["-q", "evaluate", "--data", str(photos), "--model", "default", "--model", str(tiny_dir), "--size", "64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["rows"]) == {"gray", "default", str(tiny_dir)}
    assert result["images"] == 1
    assert len(result["rows"]["default"]["hue_confusion"]) == 6, "where each truth colour went, in the JSON too"


def test_evaluate_confusion_prints_where_each_truth_colour_went(tmp_path, photo_paths, capsys):
    photos = copy_photos(tmp_path, photo_paths[:2])
    result_file = tmp_path / "result.json"
    assert main(["-q", "evaluate", "--data", str(photos), "--size", "64", "--confusion", "--output", str(result_file)]) == 0
    out = capsys.readouterr().out
    counts = json.loads(result_file.read_text())["rows"]["default"]["hue_confusion"]
    assert "default: where each truth colour went" in out and "gray: where" not in out, "the gray row paints nothing"
    lines = out.split("default: where each truth colour went")[1].splitlines()
    header = lines[1].split()
    assert header == ["truth", "red", "yellow", "green", "blue", "purple", "neutral", "pixels"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:10]}
    for label, line in zip(header[1:7], counts):
        total = sum(line)
        assert rows[label][-1] == f"{total:,}"
        assert rows[label][:6] == ([f"{c / total:.2f}" for c in line] if total else ["-"] * 6), label
    painted = [sum(line[j] for line in counts) for j in range(5)]
    assert rows["precision"] == [f"{counts[j][j] / painted[j]:.2f}" if painted[j] else "-" for j in range(5)] + [f"{sum(painted):,}"]
    # Without the flag, the table alone.
    assert main(["-q", "evaluate", "--data", str(photos), "--size", "64"]) == 0
    assert "where each truth colour went" not in capsys.readouterr().out


def test_card_grid_has_a_column_per_model_and_picks_photos_by_rule(tmp_path, photo_paths, tiny_unet, tiny_paper):
    from PIL import Image

    from colorgan_hf.evaluation import sample_files

    unet_dir, paper_dir = tmp_path / "unet", tmp_path / "paper"
    tiny_unet.save_pretrained(unet_dir)
    tiny_paper.save_pretrained(paper_dir)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, path in enumerate(photo_paths):
        shutil.copy(path, photos / f"{i:02d}.jpg")
    assert [p.name for p in sample_files(photos, 2)] == [f"{i:02d}.jpg" for i in range(0, len(photo_paths), len(photo_paths) // 2)][:2]

    card_path = tmp_path / "card.md"
    assert main(["card", "--model", str(unet_dir), "--grid-data", str(photos), "--grid-count", "2",
                 "--grid-compare", str(paper_dir), "-o", str(card_path)]) == 0
    grid = Image.open(tmp_path / "card_samples.jpg")
    first = Image.open(photos / "00.jpg")
    tile_width = round(first.width * 256 / first.height)
    assert grid.height == 2 * 256, "one row per photo"
    assert abs(grid.width - 4 * tile_width) <= 4, "gray | paper | unet | original"
    text = card_path.read_text()
    assert "card_samples.jpg" in text and f"gray input | {paper_dir} | {unet_dir} | original" in text


def test_card_takes_the_row_named_like_its_model(tmp_path, photo_paths, tiny_paper):
    paper_dir = tmp_path / "paper"
    tiny_paper.save_pretrained(paper_dir)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "a.jpg")
    result_file = tmp_path / "result.json"
    assert main(["-q", "evaluate", "--data", str(photos), "--model", "default", "--model", str(paper_dir), "--size", "64",
                 "--output", str(result_file)]) == 0
    rows = json.loads(result_file.read_text())["rows"]
    card_path = tmp_path / "card.md"
    assert main(["card", "--model", str(paper_dir), "--eval-json", str(result_file), "-o", str(card_path)]) == 0
    metadata = yaml.safe_load(card_path.read_text().split("---")[1])
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics["psnr"] == round(rows[str(paper_dir)]["psnr"], 5) != round(rows["default"]["psnr"], 5)


def test_evaluate_saturation_scales_the_predicted_chroma_only(tmp_path, photo_paths, capsys, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "a.jpg")
    rows = {}
    for saturation in ("1.0", "0.5", "0"):
        assert main(["-q", "evaluate", "--data", str(photos), "--size", "64", "--saturation", saturation, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["saturation"] == float(saturation)
        rows[saturation] = result["rows"]
    full, half, none = (rows[s]["default"]["colorfulness_pred"] for s in ("1.0", "0.5", "0"))
    assert 0.35 * full < half < 0.65 * full, (full, half)
    assert none < 0.5 < half, "saturation 0 gives the gray photo back"
    assert rows["0.5"]["gray"] == rows["1.0"]["gray"], "the baseline row does not depend on it"

    assert main(["-q", "evaluate", "--data", str(photos), "--saturation", "-1"]) == 1
    assert "--saturation must be a finite number >= 0, got -1.0" in caplog.text


def test_hue_classes_left_out_of_the_mean_print_a_dash_not_a_zero():
    """Review s4, 13: red with 965 truth pixels (under HUE_MIN_PIXELS, out of the mean) printed as 0."""
    from colorgan_hf.metrics.functional import HUE_MIN_PIXELS

    row = {"hue_recall_red": 0.0, "hue_truth_pixels_red": HUE_MIN_PIXELS - 35,
           "hue_recall_yellow": 0.97, "hue_truth_pixels_yellow": 5000,
           "hue_recall_green": 0.0, "hue_truth_pixels_green": HUE_MIN_PIXELS + 1,
           "hue_recall_blue": 0.5, "hue_truth_pixels_blue": HUE_MIN_PIXELS,
           "hue_recall_purple": float("nan"), "hue_truth_pixels_purple": 0}
    assert format_hue_classes(row) == "-/97/0/-/-", "a counted class the model missed is still 0"
    assert row["hue_recall_red"] == 0.0 and row["hue_recall_blue"] == 0.5, "the row (the JSON) keeps its values"
    older = {key: value for key, value in row.items() if not key.startswith("hue_truth_pixels_")}
    assert format_hue_classes(older) == "0/97/0/50/-", "rows without the pixel counts show what they hold"


def test_an_undefined_metric_prints_a_dash_in_the_table():
    """The gray row's hue precision is undefined (it paints nothing): "-" in the table, as in the card; nan stays in the JSON."""
    import math

    rows = {"gray": {"psnr": 21.5, "hue_precision": float("nan")}, "default": {"psnr": 23.1, "hue_precision": 0.411}}
    table = format_table({"data": "d", "images": 1, "size": 256, "saturation": 1.0, "truth_colorfulness": 40.0, "rows": rows})
    default = next(line for line in table.splitlines() if line.startswith("default "))
    assert "nan" not in table and "0.411" in default
    assert math.isnan(rows["gray"]["hue_precision"])


# ------------------------------------------------------------- one bad photo is that photo's error (issue 16, item 9)


def test_a_bad_photo_is_its_own_error_and_tiny_photos_are_scored(tmp_path, photo_paths, capsys, caplog):
    import math

    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "a.jpg")
    (photos / "b_empty.jpg").write_bytes(b"")
    (photos / "c_garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    source = Image.open(photo_paths[1]).convert("RGB")
    for w, h in [(1, 1), (4, 4), (5, 7), (10, 3)]:  # under the 11x11 SSIM window: its padding used to abort the run
        source.resize((w, h)).save(photos / f"tiny_{w}x{h}.png")
    # The others are scored and printed; the status says that some could not be (as colorize's does).
    assert main(["-q", "evaluate", "--data", str(photos), "--size", "64", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 5
    assert set(result["failed"]) == {"b_empty.jpg", "c_garbage.png"}
    assert "empty file (0 bytes)" in result["failed"]["b_empty.jpg"]
    assert "b_empty.jpg: skipped" in caplog.text and "c_garbage.png: skipped" in caplog.text
    for row in result["rows"].values():
        assert all(math.isfinite(row[key]) for key in ("psnr", "ssim", "ciede2000")), row

    table = format_table(result)
    assert table.splitlines()[-3] == "2 photo(s) could not be scored and are not in the table:"
    assert "b_empty.jpg: " in table


def test_a_tiny_photo_keeps_its_per_pixel_scores(tmp_path, photo_paths):
    import math

    import numpy as np
    from PIL import Image

    from colorgan_hf.evaluation import evaluate_models, gray_baseline, score_size
    from colorgan_hf.images import load_image
    from colorgan_hf.metrics.modules import to_array

    assert score_size(np.zeros((3, 5, 3), dtype=np.uint8)).shape == (12, 20, 3), "the smallest whole factor that fits 11x11"
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(photo_paths[0]).convert("RGB").resize((8, 6)).save(photos / "tiny.png")
    result = evaluate_models([], str(photos), size=64, progress=False)
    # Scored at 2x nearest neighbour: PSNR, a per-pixel mean, is that of the photo as it is.
    reference = load_image(photos / "tiny.png").rgb
    truth, baseline = to_array(reference).astype(float), to_array(gray_baseline(reference)).astype(float)
    assert result["rows"]["gray"]["psnr"] == pytest.approx(10 * math.log10(255**2 / ((truth - baseline) ** 2).mean()), abs=1e-3)


def test_a_corrupt_row_of_a_pair_set_is_its_own_error(train_pair_dir, tmp_path, capsys):
    from damaged import corrupt_one_row

    pairs = corrupt_one_row(train_pair_dir, tmp_path / "pairs", row=1, splits=("test",))
    assert main(["-q", "evaluate", "--data", str(pairs), "--size", "64", "--json"]) == 1  # 1: a row failed
    result = json.loads(capsys.readouterr().out)
    assert list(result["failed"]) == [f"{pairs}[1]"] and result["images"] == 2


def test_a_limit_below_one_is_refused(tmp_path, photo_paths, caplog):
    from colorgan_hf.errors import ColorGANError
    from colorgan_hf.evaluation import evaluate_models

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_paths[0], photos / "a.jpg")
    for limit in (-1, 0):
        with pytest.raises(ColorGANError, match=f"--limit must be a whole number of photos, at least 1; got {limit}"):
            evaluate_models([None], str(photos), limit=limit, progress=False)
    assert main(["-q", "evaluate", "--data", str(photos), "--limit", "-1"]) == 1
    assert "--limit must be" in caplog.text


@pytest.mark.parametrize("config, expected", [
    (dict(architecture="unet_pair", base_channels=32, second_base_channels=48, depth=4, mix=0.65),
     "Two Lab U-Nets (L in, a\\*b\\* out, fully convolutional) of widths 32 and\n  48, trained apart; their a\\*b\\* are mixed\n  0.35 / 0.65."),
    (dict(architecture="semantic_bins_pair", base_channels=32, depth=4, bin_size=10, vividness=0.5, second_base_channels=48, mix=0.65),
     "a\\*b\\* are mixed 0.35 / 0.65:\n  a Lab U-Net of width 32 reading a frozen ImageNet MobileNetV2's features"),
])
def test_card_describes_each_pair_with_its_own_widths_and_mix(config, expected):
    from colorgan_hf.card import make_card

    text = str(make_card(config, params=1000))
    assert expected in text, text.split("## Model")[1][:600]
    assert f"ColorGenerator(architecture='{config['architecture']}'" in text


def test_probe_chroma_scores_as_evaluate_does(tmp_path):
    """train/probe_chroma.py (the card's decode-time chroma table): its "as is" row is `colorgan evaluate`'s row for
    the same model and photos, and a variant that only shrinks the chroma never adds colour."""
    import shutil

    import training  # noqa: F401  (puts train/ on the path)
    import probe_chroma

    from colorgan_hf.evaluation import evaluate_models

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("bsds_12003.jpg", "sea_10016.jpg"):
        shutil.copy(Path(__file__).parent / "data" / name, photos / name)
    rows = probe_chroma.main(probe_chroma.parse_args(["--data", str(photos), "--model", "fast"]))
    expected = evaluate_models(["fast"], str(photos), progress=False)["rows"]["fast"]
    for key in ("psnr", "ciede2000", "colorfulness_ratio", "hue_recall", "hue_precision", "ab_hist"):
        assert rows["as is"][key] == pytest.approx(expected[key], abs=1e-4), key
    assert rows["c - 6"]["colorfulness_ratio"] < rows["as is"]["colorfulness_ratio"]
    assert rows["c - 6"]["hue_recall"] <= rows["as is"]["hue_recall"]


# ------------------------------------------------------------------ review s4 (training): evaluate and card of your own runs

def save_run(root: Path, model, history: list[dict] | None = None) -> Path:
    """A training run's folder: generator/ and, given one, its history.json."""
    model.save_pretrained(root / "generator")
    if history is not None:
        (root / "history.json").write_text(json.dumps(history))
    return root


def card_metadata(path: Path) -> dict:
    return yaml.safe_load(path.read_text().split("---")[1])


def card_psnr(path: Path) -> float:
    return {m["type"]: m["value"] for m in card_metadata(path)["model-index"][0]["results"][0]["metrics"]}["psnr"]


@pytest.mark.parametrize("command", ["evaluate", "card"])
def test_a_model_folder_that_does_not_exist_is_one_error_line(tmp_path, command, caplog):
    """Review s4 (training), 1: `colorgan evaluate/card --model /tmp/nosuch` ended in an HFValidationError traceback."""
    missing = tmp_path / "nosuch"
    argv = {"evaluate": ["evaluate", "--data", str(tmp_path), "--model", str(missing)],
            "card": ["card", "--model", str(missing), "-o", str(tmp_path / "card.md")]}[command]
    assert main(["-q", *argv]) == 1
    assert [record.getMessage() for record in caplog.records] == [f"{missing}: no such folder (and not a Hub id)"]


def test_evaluate_and_card_take_a_training_run_folder(tmp_path, photo_paths, tiny_unet):
    """Review s4 (training), 6: evaluate and card said "no config.json" for a run's folder, which colorize, export-onnx
    and push take for its generator/."""
    run = save_run(tmp_path / "runs" / "mine", tiny_unet)
    photos = copy_photos(tmp_path, photo_paths[:1])
    result_file = tmp_path / "result.json"
    assert main(["-q", "evaluate", "--model", str(run), "--data", str(photos), "--size", "64", "--output", str(result_file)]) == 0
    rows = json.loads(result_file.read_text())["rows"]
    assert list(rows) == ["gray", str(run / "generator")]
    card_path = tmp_path / "card.md"
    assert main(["card", "--model", str(run), "--eval-json", str(result_file), "-o", str(card_path)]) == 0
    assert card_psnr(card_path) == round(rows[str(run / "generator")]["psnr"], 5)


def test_card_takes_its_own_models_row_however_the_path_is_spelled(tmp_path, photo_paths, tiny_unet, tiny_paper, monkeypatch,
                                                                   caplog):
    """Review s4 (training), 4: with two models evaluated by relative paths, `card --model /abs/runs/int/generator`
    took the first row's numbers (the other model's). A table where none of several rows is the model is refused."""
    monkeypatch.chdir(tmp_path)
    save_run(tmp_path / "runs" / "def", tiny_unet)
    save_run(tmp_path / "runs" / "int", tiny_paper)
    photos = copy_photos(tmp_path, photo_paths[:1])
    result_file = tmp_path / "result.json"
    assert main(["-q", "evaluate", "--model", "runs/def/generator", "--model", "runs/int/generator", "--data", str(photos),
                 "--size", "64", "--output", str(result_file)]) == 0
    rows = json.loads(result_file.read_text())["rows"]
    assert round(rows["runs/int/generator"]["psnr"], 5) != round(rows["runs/def/generator"]["psnr"], 5)
    card_path = tmp_path / "card.md"
    for spelling in (str(tmp_path / "runs" / "int" / "generator"), "./runs/int", "runs/def/../int/"):
        assert main(["card", "--model", spelling, "--eval-json", str(result_file), "-o", str(card_path)]) == 0, spelling
        assert card_psnr(card_path) == round(rows["runs/int/generator"]["psnr"], 5), spelling

    caplog.clear()
    assert main(["card", "--model", "default", "--eval-json", str(result_file), "-o", str(tmp_path / "refused.md")]) == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"the evaluation of {photos} has 2 model rows (runs/def/generator, runs/int/generator) and none is the model default: "
        "name the model as it was given to `colorgan evaluate --model`, or use an evaluation of this model alone"]
    assert not (tmp_path / "refused.md").exists()


def test_card_of_your_own_run_names_it_and_its_history(tmp_path, photo_paths, tiny_unet):
    """Review s4 (training), 15: the card of one's own run was named colorgan-default with a usage snippet loading
    colorgan-hf/colorgan-default, said "Training: Not recorded." beside the run's history.json, and printed the gray
    row's undefined hue precision as nan."""
    history = [{"step": 10, "g_pixel": 0.3, "epoch": 0}, {"step": 12, "epoch": 0, "epoch_steps": 12, "epoch_g_pixel": 0.3},
               {"step": 20, "test_pixel": 0.2}, {"step": 24, "epoch": 1, "epoch_steps": 12, "epoch_g_pixel": 0.25}]
    run = save_run(tmp_path / "runs" / "mine", tiny_unet, history)
    generator = str(run / "generator")
    photos = copy_photos(tmp_path, photo_paths[:1])
    result_file = tmp_path / "result.json"
    assert main(["-q", "evaluate", "--model", generator, "--data", str(photos), "--size", "64", "--output", str(result_file)]) == 0
    assert math.isnan(json.loads(result_file.read_text())["rows"]["gray"]["hue_precision"])

    card_path = tmp_path / "card.md"
    assert main(["card", "--model", generator, "--eval-json", str(result_file), "-o", str(card_path)]) == 0
    text = card_path.read_text()
    assert card_metadata(card_path)["model-index"][0]["name"] == "mine"
    assert f'ColorGenerator.from_pretrained("{run / "generator"}")' in text and "colorgan-hf/colorgan-default" not in text
    assert (f"## Training\n\nNot described (no training notes were given). The run's history ({run / 'history.json'}) "
            f"logs 24 steps over 2 epochs.\n") in text
    gray = next(line for line in text.splitlines() if line.startswith("| gray |"))
    assert gray.endswith(" | - | " + gray.split(" | ")[-1]) and "nan" not in gray, gray

    assert main(["card", "--model", str(run), "--repo-id", "me/colorgan-mine", "-o", str(card_path)]) == 0
    text = card_path.read_text()
    assert 'ColorGenerator.from_pretrained("me/colorgan-mine")' in text and "logs 24 steps over 2 epochs" in text
    # A shipped model, or a folder without history, still says "Not recorded."
    assert main(["card", "--model", "fast", "-o", str(card_path)]) == 0
    assert "## Training\n\nNot recorded.\n" in card_path.read_text()
    assert 'from_pretrained("colorgan-hf/colorgan-fast")' in card_path.read_text()

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from colorgan_hf.data import PairTransform, build_pair_dataset, classify_color, colour_spread, with_row_index
from colorgan_hf.errors import ColorGANError


@pytest.fixture
def photo_folder(tmp_path, photo_paths):
    """8 real colour photos (4 and their mirror images) in two sources, plus one gray, one tiny, one corrupt."""
    root = tmp_path / "photos"
    for source in ("a", "b"):
        (root / source).mkdir(parents=True)
    for i, path in enumerate(photo_paths):
        image = Image.open(path).convert("RGB")
        image.save(root / "a" / f"{i}.jpg", quality=95)
        ImageOps.mirror(image).save(root / "b" / f"{i}_mirror.png")
    Image.open(photo_paths[0]).convert("L").convert("RGB").save(root / "a" / "gray.jpg")
    Image.open(photo_paths[1]).convert("RGB").resize((40, 30)).save(root / "b" / "tiny.png")
    (root / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated nonsense")
    return root


def test_build_counts_splits_and_pairs(photo_folder):
    pairs, report = build_pair_dataset([str(photo_folder)], size=96, min_size=64, test_fraction=0.25, seed=1)
    assert report.total == 11
    assert report.kept == 8
    assert report.dropped == {"grayscale": 1, "tinted": 0, "too_small": 1, "unreadable": 1}
    assert report.splits == {"train": 6, "test": 2}
    assert len(pairs["train"]) == 6 and len(pairs["test"]) == 2
    assert sum(report.by_source.values()) == 6 and set(report.by_source) <= {"a", "b"}
    for row in list(pairs["train"]) + list(pairs["test"]):
        color, gray = row["color"], row["gray"]
        assert min(color.size) == 96 and gray.size == color.size
        assert np.array_equal(np.asarray(gray), np.asarray(color.convert("L"))), "gray must be the gray of its own colour image"


def test_build_report_names_each_dropped_file_and_why(photo_folder, caplog):
    with caplog.at_level("INFO", logger="colorgan_hf.data"):
        _, report = build_pair_dataset([str(photo_folder)], size=96, min_size=64, test_fraction=0.25, seed=1)
    expected = [{"file": str(photo_folder / "a" / "gray.jpg"), "reason": "grayscale"},
                {"file": str(photo_folder / "b" / "corrupt.jpg"), "reason": "unreadable"},
                {"file": str(photo_folder / "b" / "tiny.png"), "reason": "too_small"}]
    assert sorted(report.as_dict()["dropped_files"], key=lambda row: row["file"]) == expected
    assert report.as_dict()["dropped"] == report.dropped, "the counts keep their key"
    summary = [r.getMessage() for r in caplog.records if "dropped 3 of 11" in r.getMessage()]
    assert len(summary) == 1 and all(row["file"] in summary[0] and row["reason"] in summary[0] for row in expected), caplog.text


def test_split_is_seeded(photo_folder):
    first, _ = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=3)
    again, _ = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=3)
    other, _ = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=4)
    digest = lambda ds: [np.asarray(r["color"]).sum() for r in ds["test"]]  # noqa: E731
    assert digest(first) == digest(again)
    assert digest(first) != digest(other) or digest(first)[::-1] != digest(other)


def test_max_photos_draws_a_seeded_subset_of_usable_photos(photo_folder):
    # The paper's scale by a rule, not by hand: N of the usable photos, drawn with the seed, then split.
    pairs, report = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=5, max_photos=4)
    assert report.kept == 4 and report.splits == {"train": 3, "test": 1}
    again, _ = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=5, max_photos=4)
    digest = lambda ds: sorted(float(np.asarray(r["color"]).mean()) for part in ds.values() for r in part)  # noqa: E731
    assert digest(pairs) == digest(again)
    everything, _ = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, seed=5)
    assert set(digest(pairs)) <= set(digest(everything)), "only usable photos are drawn"
    with pytest.raises(ColorGANError, match="max_photos"):
        build_pair_dataset([str(photo_folder)], size=64, max_photos=1)


def test_square_mode_squashes_like_the_paper(photo_folder):
    pairs, _ = build_pair_dataset([str(photo_folder)], size=120, resize_mode="square", test_fraction=0.25)
    assert all(r["color"].size == (120, 120) for r in pairs["train"])


def test_grayscale_and_tinted_detection(photo):
    assert classify_color(photo) == "ok"
    assert classify_color(photo.convert("L").convert("RGB")) == "grayscale"
    sepia = ImageOps.colorize(photo.convert("L"), black="#2b1d0e", white="#f0dcb4")
    assert classify_color(sepia) == "tinted"


def test_tint_spread_sets_what_counts_as_tinted(photo_folder, photo):
    """--tint-spread: the default drops a sepia print, 0 keeps it (a folder of snow or sea photos may want that); the
    genuine photos are kept either way, and a threshold that is not a number >= 0 is refused before any work."""
    sepia = ImageOps.colorize(photo.convert("L"), black="#2b1d0e", white="#f0dcb4")
    assert classify_color(sepia, tint_spread=0) == "ok"
    _, spread = colour_spread(photo)
    assert classify_color(photo, tint_spread=spread + 0.01) == "tinted", "the genuine photo falls below a threshold above its spread"
    sepia.save(photo_folder / "a" / "sepia.jpg", quality=95)
    _, report = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25)
    assert report.dropped["tinted"] == 1 and report.kept == 8
    assert {"file": str(photo_folder / "a" / "sepia.jpg"), "reason": "tinted"} in report.dropped_files
    _, report = build_pair_dataset([str(photo_folder)], size=64, test_fraction=0.25, tint_spread=0)
    assert report.dropped["tinted"] == 0 and report.kept == 9
    for bad in (-1.0, float("nan")):
        with pytest.raises(ColorGANError, match="tint_spread must be a finite number >= 0"):
            build_pair_dataset([str(photo_folder / "nowhere")], tint_spread=bad)


def test_probe_tint_measures_both_sides_of_the_threshold(photo_folder, capsys):
    """train/probe_tint.py: the share of genuine photos a spread drops and of tinted prints it catches, both rising
    with the spread, from none at 0 to every one at a spread above any photo's."""
    import training  # noqa: F401  (puts train/ on the path)
    import probe_tint

    result = probe_tint.main(probe_tint.parse_args([str(photo_folder), "--prints", "5", "--spreads", "0", "1", "100"]))
    dropped, caught = result["genuine dropped"], result["prints caught"]
    assert dropped[0] == 0 and caught[0] < 1
    # 10 readable photos (the corrupt one is skipped; the tiny one counts here), one of them gray: the other 9 fall
    # under a spread of 100.
    assert dropped[100] == pytest.approx(9 / 10) and caught[100] == 1
    assert dropped[0] <= dropped[1] <= dropped[100] and caught[0] <= caught[1] <= caught[100]
    printed = capsys.readouterr().out
    assert "10 photos as they are (10.0% dropped as grayscale at any spread), 5 made into tinted prints" in printed
    assert "          100                     90.0%                100.0%" in printed


def test_zero_usable_images_is_a_clear_error(tmp_path, photo):
    (tmp_path / "x").mkdir()
    photo.convert("L").save(tmp_path / "x" / "gray.png")
    with pytest.raises(ColorGANError, match="usable"):
        build_pair_dataset([str(tmp_path / "x")])


def test_transforms_crop_flip_and_keep_pairs_aligned(photo_folder):
    pairs, _ = build_pair_dataset([str(photo_folder)], size=96, test_fraction=0.25)
    rows = with_row_index(pairs["train"])[:4]
    transform = PairTransform(64, train=True, seed=5)
    train = transform(rows)
    again = transform(rows)
    assert all(torch.equal(a, b) for a, b in zip(train["rgb"], again["rgb"])), "crops depend on (seed, epoch, row) only"
    transform.epoch = 1
    assert not all(torch.equal(a, b) for a, b in zip(train["rgb"], transform(rows)["rgb"])), "a new epoch, new crops"
    for rgb, gray in zip(train["rgb"], train["gray"]):
        assert rgb.shape == (3, 64, 64) and gray.shape == (1, 64, 64)
        # The gray crop is the gray of the colour crop (same window, same flip).
        luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).reshape(3, 1, 1)).sum(0)
        assert (luma - gray[0]).abs().mean() < 0.01
    evaluation = PairTransform(64, train=False)
    first, second = evaluation(rows), evaluation(rows)
    assert all(torch.equal(a, b) for a, b in zip(first["rgb"], second["rgb"])), "evaluation is deterministic"


def test_a_corrupt_row_is_skipped_counted_and_named(train_pair_dir, tmp_path, caplog):
    import datasets

    from damaged import corrupt_one_row

    pairs = datasets.load_from_disk(str(corrupt_one_row(train_pair_dir, tmp_path / "pairs", row=1, splits=("train",))))
    rows = with_row_index(pairs["train"])
    transform = PairTransform(32, train=True)
    with caplog.at_level("WARNING"):
        out = transform(rows[:3])
        again = transform(rows[:3])  # the next epoch meets it again: counted once, warned once
    assert len(out["rgb"]) == len(out["gray"]) == len(out["source"]) == 2 and out["row"] == [0, 2]
    assert set(transform.skipped) == {1}
    assert caplog.text.count("pair set row 1 (source ") == 1 and "unreadable image, skipped" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(out["rgb"], again["rgb"]))
    with pytest.raises(ColorGANError, match=r"every row of a batch of the pair set is unreadable \(rows \[1\]\)"):
        transform(rows[1:2])

    # Through a DataLoader as training uses it (datasets' __getitems__, then the collate): a batch one row short.
    from colorgan_hf.training import make_loaders

    loader, _, _ = make_loaders(pairs, 32, batch_size=3, seed=0)
    sizes = [len(batch["rgb"]) for batch in loader]
    assert sum(sizes) == len(pairs["train"]) - 1 and sorted(sizes)[0] == 2


def test_rows_keep_their_pixels_when_decoded_by_the_transform(train_pair_dir):
    import datasets

    pairs = datasets.load_from_disk(str(train_pair_dir))
    decoded_by_datasets = pairs["train"].add_column("row", list(range(len(pairs["train"]))))[:4]
    ours = with_row_index(pairs["train"])[:4]
    assert isinstance(ours["color"][0], dict), "the transform decodes, so that it can catch a corrupt row"
    for train in (True, False):
        a = PairTransform(32, train=train, seed=3)(decoded_by_datasets)
        b = PairTransform(32, train=train, seed=3)(ours)
        assert all(torch.equal(x, y) for x, y in zip(a["rgb"] + a["gray"], b["rgb"] + b["gray"]))

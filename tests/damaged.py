"""A saved pair set with one row whose stored image bytes are corrupt, for the tests of skipping bad rows."""

from __future__ import annotations

from pathlib import Path

# A JPEG header followed by nonsense: PIL opens it, then fails to decode it.
CORRUPT_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13\x37" * 200


def corrupt_one_row(pair_dir: Path, out: Path, row: int = 1, splits=("train", "test")) -> Path:
    """Copy the pair set at ``pair_dir`` to ``out`` with the colour image of ``row`` in each of ``splits`` corrupt."""
    import datasets

    pairs = datasets.load_from_disk(str(pair_dir))
    for split in splits:
        table = pairs[split].cast_column("color", datasets.Image(decode=False))

        def spoil(example, index):
            if index == row:
                example["color"] = {"bytes": CORRUPT_JPEG, "path": None}
            return example

        pairs[split] = table.map(spoil, with_indices=True).cast_column("color", datasets.Image())
    pairs.save_to_disk(str(out))
    return out

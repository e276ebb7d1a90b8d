"""Publishing to the Hugging Face Hub: generator, discriminator config, card and samples in one commit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from huggingface_hub import CommitOperationAdd, HfApi

from .card import NOT_RECORDED
from .errors import ModelLoadError
from .models import ColorGenerator

GENERATOR_FILES = ("config.json", "model.safetensors")
MAX_SAMPLES = 4


def resolve_run(path: str | Path) -> tuple[Path, Path | None, list[Path]]:
    """A training output folder or a generator folder -> (generator dir, discriminator dir or None, sample PNGs)."""
    root = Path(path)
    generator_dir = root / "generator" if (root / "generator" / "config.json").is_file() else root
    for name in GENERATOR_FILES:
        if not (generator_dir / name).is_file():
            raise ModelLoadError(f"{generator_dir}: no {name}; expected a generator saved with save_pretrained or a training output folder")
    discriminator_dir = root / "discriminator" if (root / "discriminator" / "config.json").is_file() else None
    samples = sorted((root / "samples").glob("*.png"))[-MAX_SAMPLES:] if (root / "samples").is_dir() else []
    return generator_dir, discriminator_dir, samples


def push_model(path: str | Path, repo_id: str, evaluations: Sequence[dict] = (), training: str = NOT_RECORDED,
               private: bool = False, token: str | None = None, commit_message: str = "Upload colorgan-hf generator") -> str:
    """Push generator weights and config, the discriminator's config, a card and sample images as ONE commit.

    Returns the commit URL.
    """
    generator_dir, discriminator_dir, samples = resolve_run(path)
    generator = ColorGenerator.from_pretrained(generator_dir)
    sample_paths = [f"samples/{p.name}" for p in samples]
    card = generator.generate_model_card(evaluations=list(evaluations), training=training, samples=sample_paths,
                                         sample_rule="the training run's validation grids, the newest last", repo_id=repo_id)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(generator_dir / name)) for name in GENERATOR_FILES]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    if discriminator_dir is not None:
        config = json.loads((discriminator_dir / "config.json").read_text())
        operations.append(CommitOperationAdd(path_in_repo="discriminator/config.json", path_or_fileobj=json.dumps(config, indent=2).encode()))
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(p)) for name, p in zip(sample_paths, samples)]
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    return info.commit_url

"""Publishing to the Hugging Face Hub: generator, discriminator config, card and samples in one commit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from huggingface_hub import CommitOperationAdd, HfApi

from .card import choose_rows, describe_history, read_run_history
from .errors import ModelLoadError
from .hub import push_errors
from .models import ColorGenerator
from .registry import SAMPLE_PATTERN, SAMPLES_DIR

GENERATOR_FILES = ("config.json", "model.safetensors")
MAX_SAMPLES = 4


def resolve_run(path: str | Path) -> tuple[Path, Path | None, list[Path]]:
    """A training output folder or a generator folder -> (generator dir, discriminator dir or None, sample PNGs).

    The samples are the newest grids of samples/ up to the run's last logged step: every grid is
    logged (its test loss) in the run's history, and a grid of a later step is an earlier run's,
    left by --overwrite_output_dir. Without a history every grid counts.
    """
    return _resolve_run(path, read_run_history(path))


def _resolve_run(path: str | Path, history: tuple[Path, list[dict]] | None) -> tuple[Path, Path | None, list[Path]]:
    """:func:`resolve_run` given the run's history, already read."""
    root = Path(path)
    generator_dir = root / "generator" if (root / "generator" / "config.json").is_file() else root
    for name in GENERATOR_FILES:
        if not (generator_dir / name).is_file():
            raise ModelLoadError(f"{generator_dir}: no {name}; expected a generator saved with save_pretrained or a training output folder")
    discriminator_dir = root / "discriminator" if (root / "discriminator" / "config.json").is_file() else None
    samples = sorted((root / SAMPLES_DIR).glob("*.png")) if (root / SAMPLES_DIR).is_dir() else []
    if samples and history is not None:
        last = max(int(row["step"]) for row in history[1])
        steps = [SAMPLE_PATTERN.fullmatch(p.name) for p in samples]
        samples = [p for p, step in zip(samples, steps) if step is None or int(step.group(1)) <= last]
    return generator_dir, discriminator_dir, samples[-MAX_SAMPLES:]


def push_model(path: str | Path, repo_id: str, evaluations: Sequence[dict] = (), training: str | None = None,
               private: bool = False, token: str | None = None, commit_message: str = "Upload colorgan-hf generator") -> str:
    """Push generator weights and config, the discriminator's config, a card and sample images as ONE commit.

    The card's model-index takes the model's own row of each of ``evaluations`` (:func:`choose_rows`).
    ``training``: the card's Training section (default: what the run's history says, else "Not recorded.").
    Returns the commit URL; a Hub that cannot be reached or refuses the login is a :class:`HubError`.
    """
    history = read_run_history(path)  # read once: it picks the samples and, without notes, writes the Training section
    generator_dir, discriminator_dir, samples = _resolve_run(path, history)
    generator = ColorGenerator.from_pretrained(generator_dir)
    sample_paths = [f"{SAMPLES_DIR}/{p.name}" for p in samples]
    if training is None:
        training = describe_history(history, show_path=False)  # the card goes to the Hub: no local path in it
    card = generator.generate_model_card(evaluations=list(evaluations), model_row=choose_rows(evaluations, str(path)),
                                         training=training, samples=sample_paths,
                                         sample_rule="the training run's validation grids, the newest last", repo_id=repo_id)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(generator_dir / name)) for name in GENERATOR_FILES]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    if discriminator_dir is not None:
        config = json.loads((discriminator_dir / "config.json").read_text())
        operations.append(CommitOperationAdd(path_in_repo="discriminator/config.json", path_or_fileobj=json.dumps(config, indent=2).encode()))
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(p)) for name, p in zip(sample_paths, samples)]
    api = HfApi(token=token)
    with push_errors(repo_id):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    return info.commit_url

"""Model cards: Hub metadata with a `model-index` of measured results, filled from a template.

:func:`make_card` is what :meth:`ColorGenerator.save_pretrained` and ``push_to_hub`` use
(pass ``model_card_kwargs``); :func:`write_card` is all of ``colorgan card``: it picks the
model's row of the evaluation tables, draws the sample grid and writes the card atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from PIL import Image

from .errors import ColorGANError
from .hub import HUB_METADATA
from .registry import HISTORY_FILE, SHIPPED_MODELS, model_key, run_generator
from .tables import GRAY_BASELINE, HUE_CLASSES_TITLE, format_hue_classes, grid_legend, row_name, undefined
from .tables import sample_rule as grid_rule

logger = logging.getLogger(__name__)
TEMPLATE_PATH = Path(__file__).parent / "card_template.md"
# The Training section of a card whose training was not described.
NOT_RECORDED = "Not recorded."
DEFAULT_REPO_ID = "colorgan-hf/colorgan-default"
# Metrics that go into the Hub's model-index: (result key, metric type, display name).
MODEL_INDEX_METRICS = (
    ("psnr", "psnr", "PSNR (dB)"),
    ("ssim", "ssim", "SSIM"),
    ("ciede2000", "ciede2000", "CIEDE2000"),
    ("colorfulness_ratio", "colorfulness_ratio", "Colourfulness ratio (pred / true)"),
    ("a_shift", "a_shift", "Mean a* shift"),
    ("b_shift", "b_shift", "Mean b* shift"),
    ("ab_auc", "ab_auc", "ab AuC (0-150)"),
    ("mse_weighted_mean", "mse", "RGB MSE (paper)"),
    ("hue_recall", "hue_recall", "Hue recall (mean over hue classes)"),
    ("hue_precision", "hue_precision", "Hue precision"),
    ("ab_hist", "ab_hist", "ab histogram intersection"),
)
# A results table carries the set metrics' columns when its rows have this key (older
# `colorgan evaluate` files do not).
SET_METRICS_KEY = "hue_recall"


def eval_results(evaluations: Sequence[dict], model_rows: str | Sequence[str | None]) -> list[EvalResult]:
    """`colorgan evaluate` results -> EvalResult entries for the model's row of each table
    (``model_rows``: one per table, None for none; a single name for every table).

    A metric missing from a table (a file written before it existed) or undefined (nan) is left out.
    """
    if isinstance(model_rows, str):
        model_rows = [model_rows] * len(evaluations)
    results = []
    for evaluation, model_row in zip(evaluations, model_rows):
        if model_row is None:
            continue
        if model_row not in evaluation["rows"]:
            raise ColorGANError(f"the evaluation of {evaluation['data']} has no row {model_row!r} "
                                f"(its rows: {', '.join(evaluation['rows'])})")
        row = evaluation["rows"][model_row]
        name = Path(str(evaluation["data"]).rstrip("/")).name or str(evaluation["data"])
        for key, metric_type, metric_name in MODEL_INDEX_METRICS:
            if undefined(row.get(key)):
                continue
            results.append(EvalResult(
                task_type="image-to-image", task_name="Image colorization", dataset_type=name, dataset_name=name,
                dataset_split="test", metric_type=metric_type, metric_name=metric_name, metric_value=round(float(row[key]), 5),
            ))
    return results


def choose_rows(evaluations: Sequence[dict], model: str | None = None) -> list[str | None]:
    """The model's row of each evaluation table (None for a table with the gray row alone).

    ``model``: the model as `colorgan evaluate --model` may have named it (a shipped name, a folder,
    a Hub id; "default" for the shipped default), None when it is not known. Rows are matched by
    :func:`colorgan_hf.registry.model_key`, so a folder matches however its path was spelled and a
    training run's folder matches its generator/. A table's only model row is taken even when it
    matches nothing (with a warning: it may be this model evaluated from another folder); among
    several, none of them this model's, none is taken: another model's numbers must not go into
    the card.
    """
    key = None if model is None else model_key(model)
    chosen: list[str | None] = []
    for evaluation in evaluations:
        candidates = [row for row in evaluation["rows"] if row != GRAY_BASELINE]
        matching = [row for row in candidates if key is not None and model_key(row) == key]
        if matching:
            chosen.append(matching[0])
            continue
        if len(candidates) > 1:
            raise ColorGANError(
                f"the evaluation of {evaluation['data']} has {len(candidates)} model rows ({', '.join(candidates)}) and none is "
                f"{'the model ' + model if model is not None else 'known to be this model'}: name the model as it was given "
                f"to `colorgan evaluate --model`, or use an evaluation of this model alone")
        if candidates and key is not None:
            logger.warning(f"the evaluation of {evaluation['data']}: its one model row {candidates[0]!r} is not recognisably "
                           f"{model}; its numbers go into the card")
        chosen.append(candidates[0] if candidates else None)
    return chosen


def read_run_history(folder: str | os.PathLike | None) -> tuple[Path, list[dict]] | None:
    """(path, rows) of the training history of the run ``folder`` (or the run whose generator/ it is), if it has one."""
    if folder is None or not Path(folder).is_dir():
        return None
    folder = Path(folder)
    for run in (folder, folder.parent) if folder.name == "generator" else (folder,):
        path = run / HISTORY_FILE
        if path.is_file():
            try:
                history = json.loads(path.read_text())
                steps = [int(row["step"]) for row in history]
            except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
                logger.warning(f"{path}: not a readable training history; left out")
                return None
            return (path, history) if steps else None
    return None


def training_from_history(folder: str | os.PathLike | None, show_path: bool = True) -> str:
    """The Training section of a card given no notes: how long the run of ``folder`` trained and where its
    history is (``show_path=False``: not the local path, for a card that goes to the Hub), or NOT_RECORDED without one."""
    return describe_history(read_run_history(folder), show_path)


def describe_history(found: tuple[Path, list[dict]] | None, show_path: bool = True) -> str:
    """:func:`training_from_history` of a history already read (:func:`read_run_history`)."""
    if found is None:
        return NOT_RECORDED
    path, history = found
    epochs = {row["epoch"] for row in history if "epoch" in row}
    span = f"{max(row['step'] for row in history):,} steps" + (f" over {len(epochs)} epoch{'s' * (len(epochs) != 1)}" if epochs else "")
    where = f"history ({path})" if show_path else f"{HISTORY_FILE}"
    return f"Not described (no training notes were given). The run's {where} logs {span}."


def make_card(
    config: dict[str, Any],
    params: int,
    evaluations: Sequence[dict] = (),
    model_row: str | None = None,
    training: str = NOT_RECORDED,
    samples: Sequence[str] = (),
    sample_rule: str = "",
    repo_id: str = DEFAULT_REPO_ID,
    title: str | None = None,
    summary: str = "",
    datasets: Sequence[str] = (),
    limitations: str = "",
    sections: Sequence[str] = (),
    model_name: str | None = None,
) -> ModelCard:
    """Render the card of a generator with ``config`` from the template.

    ``model_row`` names the row of ``evaluations`` whose numbers go into the model-index (or
    one per table); by default the only one that is not the gray baseline (:func:`choose_rows`).
    ``model_name``: the model-index's name (default: ``repo_id``'s last part). ``sections``:
    markdown sections (each with its own heading) placed before the limitations, e.g. the
    colour-hints table.
    """
    architecture = config.get("architecture", "unet")
    rows = model_row if model_row is not None else choose_rows(evaluations)
    data = ModelCardData(
        library_name=HUB_METADATA["library_name"], license=HUB_METADATA["license"], pipeline_tag=HUB_METADATA["pipeline_tag"],
        tags=list(HUB_METADATA["tags"]) + [f"architecture-{architecture}"], datasets=list(datasets) or None,
        model_name=model_name or repo_id.split("/")[-1],
        eval_results=eval_results(evaluations, rows) or None,
    )
    tables = [{**evaluation, "set_metrics": all(SET_METRICS_KEY in r for r in evaluation["rows"].values())}
              for evaluation in evaluations]
    extra: dict[str, Any] = {}
    if evaluations:
        from .metrics.functional import HUE_CLASS_LABELS, HUE_MIN_PIXELS, PRED_CHROMA_MIN, TRUTH_CHROMA_MIN

        extra = dict(hue_classes=format_hue_classes, hue_classes_title=HUE_CLASSES_TITLE, hue_class_names=", ".join(HUE_CLASS_LABELS),
                     hue_min_pixels=f"{HUE_MIN_PIXELS:,}", truth_chroma=f"{TRUTH_CHROMA_MIN:g}", pred_chroma=f"{PRED_CHROMA_MIN:g}")
    return ModelCard.from_template(
        data, template_str=TEMPLATE_PATH.read_text(), title=title or f"{architecture} generator", summary=summary,
        repo_id=repo_id, architecture=architecture, config=config, params=f"{params:,}",
        config_args=", ".join(f"{k}={v!r}" for k, v in sorted(config.items())), training=training,
        evaluations=tables, any_set_metrics=any(t["set_metrics"] for t in tables), samples=list(samples),
        sample_rule=sample_rule, limitations=limitations, sections=[s.strip() for s in sections if s.strip()],
        cell=table_cell, **extra,
    )


def table_cell(value: float | None, spec: str) -> str:
    """A number of the results tables; "-" for an undefined one (nan: the gray row's hue precision), as the hue classes."""
    return "-" if undefined(value) else spec % value


def card_names(model: str | None, repo_id: str | None = None) -> tuple[str, str]:
    """(the id the card's usage snippet loads, the model-index name) of ``model`` (as ``colorgan card --model``).

    From ``repo_id`` when given; else a shipped model's Hub id, a folder's own path (it loads as it
    is) and name (the run's name for a run's generator/), or the Hub id the model came from.
    """
    if repo_id:
        return repo_id, repo_id.split("/")[-1]
    name = row_name(model)
    if name in SHIPPED_MODELS:
        return f"colorgan-hf/colorgan-{name}", f"colorgan-{name}"
    folder = Path(run_generator(name))
    if folder.is_dir():
        absolute = folder.resolve()
        return str(folder), (absolute.parent.name if absolute.name == "generator" else absolute.name)
    return name, name.split("/")[-1]


def read_evaluations(paths: Sequence[str | os.PathLike] | None) -> list[dict]:
    """The results of `colorgan evaluate --output` files."""
    evaluations = []
    for path in paths or []:
        try:
            evaluations.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ColorGANError(f"{path}: not a `colorgan evaluate --output` JSON file ({error})") from None
    return evaluations


def read_text_or(path: str | os.PathLike | None, default: str) -> str:
    """The text of ``path``, or ``default`` when no path is given."""
    return Path(path).read_text() if path else default


def write_card(
    output: str | os.PathLike,
    generator,
    model: str | None = None,
    eval_json: Sequence[str | os.PathLike] = (),
    training_file: str | os.PathLike | None = None,
    limitations_file: str | os.PathLike | None = None,
    samples: Sequence[str] = (),
    sample_rule: str = "",
    grid_data: str | os.PathLike | None = None,
    grid_compare: Sequence[str] = (),
    grid_count: int = 12,
    repo_id: str | None = None,
    title: str | None = None,
    summary: str = "",
    datasets: Sequence[str] = (),
    make_grid: Callable[[str | os.PathLike, int, list[str]], Image.Image] | None = None,
    section_files: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the card of ``generator`` (a loaded :class:`ColorGenerator`, called ``model`` in the
    evaluation tables: a shipped name, folder or Hub id; None: the default) to ``output``, atomically.

    ``make_grid(grid_data, grid_count, grid_compare)`` draws the sample grid (the CLI passes
    :func:`colorgan_hf.evaluation.sample_grid` bound to the generator): the card itself never
    loads a model, so the models can render their card without an import circle.

    The model-index takes the model's row of the ``eval_json`` tables (:func:`choose_rows`), and
    is named, as the usage snippet loads it, by :func:`card_names`. Without ``training_file`` the
    Training section summarises the run's history when the model is a run's folder. With
    ``grid_data``, a gray | ``grid_compare``... | model | original grid of every k-th photo is
    saved beside the card as ``<stem>_samples.jpg`` and shown, its columns named in the rule.
    Each of ``section_files`` (markdown) becomes a section before the limitations.
    Returns the card's path.
    """
    from .files import write_atomic
    from .images import save_image_atomic

    model = model or None  # "" names the default model too
    folder = None if row_name(model) in SHIPPED_MODELS else run_generator(model)  # load_model reads a shipped name first
    training = read_text_or(training_file, "") or training_from_history(folder)
    limitations = read_text_or(limitations_file, "")
    out = Path(output)
    snippet_id, model_name = card_names(model, repo_id)
    samples, rule = list(samples), sample_rule
    if grid_data and make_grid is not None:
        grid_path = out.parent / f"{out.stem}_samples.jpg"
        compare = list(grid_compare)
        save_image_atomic(make_grid(grid_data, grid_count, compare), grid_path)
        samples.append(grid_path.name)
        rule = rule or f"{grid_rule(grid_data, grid_count)}; columns: {grid_legend(model, compare)}"
    evaluations = read_evaluations(eval_json)
    card = generator.generate_model_card(
        evaluations=evaluations, model_row=choose_rows(evaluations, row_name(model)), training=training, samples=samples,
        sample_rule=rule, repo_id=snippet_id, model_name=model_name, title=title, summary=summary, datasets=list(datasets),
        limitations=limitations, sections=[Path(path).read_text() for path in section_files],
    )
    return write_atomic(out, str(card))

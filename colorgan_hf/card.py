"""Model cards: Hub metadata with a `model-index` of measured results, filled from a template.

:func:`make_card` is what :meth:`ColorGenerator.save_pretrained` and ``push_to_hub`` use
(pass ``model_card_kwargs``); :func:`write_card` is all of ``colorgan card``: it picks the
model's row of the evaluation tables, draws the sample grid and writes the card atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from PIL import Image

from .errors import ColorGANError
from .hub import HUB_METADATA
from .tables import GRAY_BASELINE, HUE_CLASSES_TITLE, format_hue_classes, grid_legend, row_name
from .tables import sample_rule as grid_rule

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


def eval_results(evaluations: Sequence[dict], model_row: str) -> list[EvalResult]:
    """`colorgan evaluate` results -> EvalResult entries for ``model_row`` of each table.

    A metric missing from a table (a file written before it existed) or undefined (nan) is left out.
    """
    results = []
    for evaluation in evaluations:
        row = evaluation["rows"][model_row]
        name = Path(str(evaluation["data"]).rstrip("/")).name or str(evaluation["data"])
        for key, metric_type, metric_name in MODEL_INDEX_METRICS:
            if row.get(key) is None or math.isnan(float(row[key])):
                continue
            results.append(EvalResult(
                task_type="image-to-image", task_name="Image colorization", dataset_type=name, dataset_name=name,
                dataset_split="test", metric_type=metric_type, metric_name=metric_name, metric_value=round(float(row[key]), 5),
            ))
    return results


def choose_row(evaluations: Sequence[dict], name: str | None = None) -> str | None:
    """The model's row of the evaluation tables: the one called ``name``, else the first that is not the gray baseline."""
    if not evaluations:
        return None
    rows = evaluations[0]["rows"]
    if name is not None and name in rows:
        return name
    return next((row for row in rows if row != GRAY_BASELINE), None)


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
) -> ModelCard:
    """Render the card of a generator with ``config`` from the template.

    ``model_row`` names the row of ``evaluations`` whose numbers go into the model-index;
    by default the first that is not the gray baseline. ``sections``: markdown sections (each
    with its own heading) placed before the limitations, e.g. the colour-hints table.
    """
    architecture = config.get("architecture", "unet")
    row = model_row or choose_row(evaluations)
    data = ModelCardData(
        library_name=HUB_METADATA["library_name"], license=HUB_METADATA["license"], pipeline_tag=HUB_METADATA["pipeline_tag"],
        tags=list(HUB_METADATA["tags"]) + [f"architecture-{architecture}"], datasets=list(datasets) or None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(evaluations, row) if evaluations and row else None,
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
        sample_rule=sample_rule, limitations=limitations, sections=[s.strip() for s in sections if s.strip()], **extra,
    )


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
    repo_id: str = DEFAULT_REPO_ID,
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

    The model-index takes the row of the ``eval_json`` tables called like the model (as
    `colorgan evaluate --model` calls it), else the first that is not the gray baseline. With
    ``grid_data``, a gray | ``grid_compare``... | model | original grid of every k-th photo is
    saved beside the card as ``<stem>_samples.jpg`` and shown, its columns named in the rule.
    Each of ``section_files`` (markdown) becomes a section before the limitations.
    Returns the card's path.
    """
    from .files import write_atomic
    from .images import save_image_atomic

    training = read_text_or(training_file, NOT_RECORDED)
    limitations = read_text_or(limitations_file, "")
    out = Path(output)
    model = model or None  # "" names the default model too
    samples, rule = list(samples), sample_rule
    if grid_data and make_grid is not None:
        grid_path = out.parent / f"{out.stem}_samples.jpg"
        compare = list(grid_compare)
        save_image_atomic(make_grid(grid_data, grid_count, compare), grid_path)
        samples.append(grid_path.name)
        rule = rule or f"{grid_rule(grid_data, grid_count)}; columns: {grid_legend(model, compare)}"
    evaluations = read_evaluations(eval_json)
    card = generator.generate_model_card(
        evaluations=evaluations, model_row=choose_row(evaluations, row_name(model)), training=training, samples=samples,
        sample_rule=rule, repo_id=repo_id, title=title, summary=summary, datasets=list(datasets), limitations=limitations,
        sections=[Path(path).read_text() for path in section_files],
    )
    return write_atomic(out, str(card))

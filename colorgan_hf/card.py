"""Model cards: Hub metadata with a `model-index` of measured results, filled from a template.

:func:`make_card` is what :meth:`ColorGenerator.save_pretrained` and ``push_to_hub`` use
(pass ``model_card_kwargs``), and what ``colorgan card`` writes to ``model_card.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .models import HUB_METADATA

TEMPLATE_PATH = Path(__file__).parent / "card_template.md"
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
)


def eval_results(evaluations: Sequence[dict], model_row: str) -> list[EvalResult]:
    """`colorgan evaluate` results -> EvalResult entries for ``model_row`` of each table."""
    results = []
    for evaluation in evaluations:
        row = evaluation["rows"][model_row]
        name = Path(str(evaluation["data"]).rstrip("/")).name or str(evaluation["data"])
        for key, metric_type, metric_name in MODEL_INDEX_METRICS:
            results.append(EvalResult(
                task_type="image-to-image", task_name="Image colorization", dataset_type=name, dataset_name=name,
                dataset_split="test", metric_type=metric_type, metric_name=metric_name, metric_value=round(float(row[key]), 5),
            ))
    return results


def make_card(
    config: dict[str, Any],
    params: int,
    evaluations: Sequence[dict] = (),
    model_row: str | None = None,
    training: str = "Not recorded.",
    samples: Sequence[str] = (),
    sample_rule: str = "",
    repo_id: str = "colorgan-hf/colorgan-default",
    title: str | None = None,
    summary: str = "",
    datasets: Sequence[str] = (),
    limitations: str = "",
) -> ModelCard:
    """Render the card of a generator with ``config`` from the template."""
    architecture = config.get("architecture", "unet")
    row = model_row or next((name for name in (evaluations[0]["rows"] if evaluations else {}) if name != "gray"), None)
    data = ModelCardData(
        library_name=HUB_METADATA["library_name"], license=HUB_METADATA["license"], pipeline_tag=HUB_METADATA["pipeline_tag"],
        tags=list(HUB_METADATA["tags"]) + [f"architecture-{architecture}"], datasets=list(datasets) or None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(evaluations, row) if evaluations and row else None,
    )
    return ModelCard.from_template(
        data, template_str=TEMPLATE_PATH.read_text(), title=title or f"{architecture} generator", summary=summary,
        repo_id=repo_id, architecture=architecture, params=f"{params:,}",
        config_args=", ".join(f"{k}={v!r}" for k, v in sorted(config.items())), training=training,
        evaluations=list(evaluations), samples=list(samples), sample_rule=sample_rule, limitations=limitations,
    )

"""Every colorization metric of colorgan-hf in one pass, an `evaluate` module.

PSNR, SSIM, CIEDE2000, colourfulness of predictions and truth and their ratio, mean a*/b*
shift, ab AuC and the paper's batch MSE (means over images), and the set metrics pooled
over every pixel (hue recall per class and their mean, hue precision, ab histogram
intersection, and the hue confusion counts behind them): what `colorgan evaluate` reports. Each image is converted to Lab once. The
single-metric modules beside it give the same numbers one at a time.
"""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import PooledColorStats, all_metrics
from colorgan_hf.metrics.paper_mse import PAPER_BATCH_SIZE, summarize_batches


class Colorization(modules.ImageMetric):
    description = "All colorization metrics of colorgan-hf; see colorgan_hf/metrics/functional.py for each definition."

    def score(self, prediction, reference, pooled: PooledColorStats | None = None):
        return {key: value.item() for key, value in all_metrics(prediction, reference, pooled).items()}

    def summarize(self, per_image, batch_size: int = PAPER_BATCH_SIZE, **kwargs):
        means = super().summarize(per_image)
        truth = means["colorfulness_true"]
        means["colorfulness_ratio"] = means["colorfulness_pred"] / truth if truth else float("nan")
        means.update(summarize_batches([row["mse"] for row in per_image], batch_size))
        return means

    def _compute(self, predictions, references, batch_size: int = PAPER_BATCH_SIZE, **kwargs):
        modules.check_pairs(predictions, references)
        pooled = PooledColorStats()
        per_image = [self.score(modules.to_batch([p]), modules.to_batch([r]), pooled) for p, r in zip(predictions, references)]
        return {**self.summarize(per_image, batch_size=batch_size), **pooled.result()}

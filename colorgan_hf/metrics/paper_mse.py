"""The paper's test metric: RGB mean squared error per batch and their weighted mean (its Table 2)."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import batch_weighted_mean, mse

PAPER_BATCH_SIZE = 64


class PaperMse(modules.ImageMetric):
    description = ("Mean squared error of RGB in [0, 1], per batch of `batch_size` images (default 64, the paper's) in input order, "
                   "and the batch-size-weighted mean, as in Table 2 of Demirel & Yuce.")

    def score(self, prediction, reference):
        return {"mse": mse(prediction, reference).item()}

    def summarize(self, per_image, batch_size: int = PAPER_BATCH_SIZE, **kwargs):
        return summarize_batches([row["mse"] for row in per_image], batch_size)


def summarize_batches(values: list[float], batch_size: int) -> dict:
    """Per-image MSEs in input order -> the mean of each batch and their size-weighted mean."""
    batches = [values[i : i + batch_size] for i in range(0, len(values), batch_size)]
    per_batch = [sum(b) / len(b) for b in batches]
    return {"mse_per_batch": per_batch, "mse_weighted_mean": batch_weighted_mean(per_batch, [len(b) for b in batches])}

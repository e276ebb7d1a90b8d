"""Intersection of the a*b* colour distributions of predictions and truth, pooled over the eval set."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import AB_HIST_BINS, AB_HIST_RANGE


class AbHist(modules.PooledImageMetric):
    description = (
        f"Sum of the elementwise minimum of the a*b* histograms ({AB_HIST_BINS}x{AB_HIST_BINS} bins over "
        f"[-{AB_HIST_RANGE:g}, {AB_HIST_RANGE:g}], values outside clipped into the edge bins) of the predictions and of the "
        f"truth, each image's histogram normalised by its pixel count, then pooled over the set and normalised to sum 1: "
        f"1 when the colour distributions match, low for washed-out or wrongly coloured predictions."
    )

    def select(self, stats):
        return stats.ab_hist()

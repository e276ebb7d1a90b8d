"""AuC of the ab error over thresholds 0..150 (Zhang et al. 2016), an `evaluate` module."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import AUC_MAX_THRESHOLD, ab_auc


class AbAuc(modules.ImageMetric):
    description = f"Area under the curve of the share of pixels whose ab error is within t, t = 0..{AUC_MAX_THRESHOLD}, in [0, 1]."
    citation = "Zhang, Isola, Efros. Colorful image colorization. ECCV 2016."

    def score(self, prediction, reference):
        return {"ab_auc": ab_auc(prediction, reference).item()}

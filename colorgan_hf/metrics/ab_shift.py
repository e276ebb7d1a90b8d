"""Mean a* and b* shift of the predictions against the truth; a negative b* shift is a blue bias."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import ab_shift


class AbShift(modules.ImageMetric):
    description = "Mean a* (green-red) and b* (blue-yellow) of prediction minus truth, in Lab units, mean over images."

    def score(self, prediction, reference):
        a, b = ab_shift(prediction, reference)[0].tolist()
        return {"a_shift": a, "b_shift": b}

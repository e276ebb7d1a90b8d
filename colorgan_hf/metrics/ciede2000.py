"""CIEDE2000 colour difference of colorized images against the truth, an `evaluate` module."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import ciede2000


class Ciede2000(modules.ImageMetric):
    description = "Mean CIEDE2000 colour difference per pixel (lower is better), mean over images."
    citation = "Sharma, Wu, Dalal. The CIEDE2000 color-difference formula. Color Research & Application 2005."

    def score(self, prediction, reference):
        return {"ciede2000": ciede2000(prediction, reference).item()}

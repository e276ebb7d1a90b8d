"""SSIM of colorized images against the true colour images, an `evaluate` module."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import ssim


class Ssim(modules.ImageMetric):
    description = "Structural similarity (Wang et al. 2004), 11x11 Gaussian window, mean over RGB channels and images."
    citation = "Wang, Bovik, Sheikh, Simoncelli. Image quality assessment: from error visibility to structural similarity. IEEE TIP 2004."

    def score(self, prediction, reference):
        return {"ssim": ssim(prediction, reference).item()}

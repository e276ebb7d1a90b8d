"""PSNR (dB) of colorized images against the true colour images, an `evaluate` module."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import PSNR_CAP_DB, psnr


class Psnr(modules.ImageMetric):
    description = f"Peak signal-to-noise ratio of RGB in [0, 1] (dB), mean over images; identical images score the cap, {PSNR_CAP_DB} dB."

    def score(self, prediction, reference):
        return {"psnr": psnr(prediction, reference).item()}

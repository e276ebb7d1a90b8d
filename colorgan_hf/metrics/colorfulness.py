"""Colourfulness (Hasler & Suesstrunk 2003) of predictions and references, and their ratio."""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import colorfulness


class Colorfulness(modules.ImageMetric):
    description = ("Hasler-Suesstrunk colourfulness (0..255 scale) of the predictions and of the references, mean over images, "
                   "and the ratio predicted / true: below 1 is washed out, above 1 over-coloured.")
    citation = "Hasler, Suesstrunk. Measuring colourfulness in natural images. SPIE Human Vision and Electronic Imaging 2003."

    def score(self, prediction, reference):
        return {"colorfulness_pred": colorfulness(prediction).item(), "colorfulness_true": colorfulness(reference).item()}

    def summarize(self, per_image, **kwargs):
        means = super().summarize(per_image)
        ratio = means["colorfulness_pred"] / means["colorfulness_true"] if means["colorfulness_true"] else float("nan")
        return {**means, "colorfulness_ratio": ratio}

"""Hue precision, pooled over the eval set: are the predicted colours the truth's hue class?"""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import PRED_CHROMA_MIN, TRUTH_CHROMA_MIN


class HuePrecision(modules.PooledImageMetric):
    description = (
        f"Of the predicted pixels of the whole set with chroma >= {PRED_CHROMA_MIN:g}, the share whose truth has chroma >= "
        f"{TRUTH_CHROMA_MIN:g} and the same CIELAB hue class (the classes of hue_recall); nan when nothing is predicted in colour."
    )

    def select(self, stats):
        return stats.hue_precision()

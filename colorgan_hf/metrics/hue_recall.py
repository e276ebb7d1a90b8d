"""Hue recall, pooled over the eval set: are the truth's colours predicted in the right hue class?"""

from colorgan_hf.metrics import modules
from colorgan_hf.metrics.functional import HUE_CLASS_LABELS, HUE_CLASSES, HUE_EDGES, HUE_MIN_PIXELS, PRED_CHROMA_MIN, TRUTH_CHROMA_MIN

CLASS_RANGES = ", ".join(f"{label} [{lo:g}, {hi:g})" for label, lo, hi in zip(HUE_CLASS_LABELS, HUE_EDGES, HUE_EDGES[1:]))


class HueRecall(modules.PooledImageMetric):
    description = (
        f"CIELAB hue angle h = atan2(b*, a*) in degrees, taken in [{HUE_EDGES[0]:g}, {HUE_EDGES[-1]:g}), split into "
        f"{CLASS_RANGES} (keys: {', '.join(HUE_CLASSES)}). hue_recall_<class>: of the truth pixels of the whole set with "
        f"chroma >= {TRUTH_CHROMA_MIN:g} in that class, the share whose prediction has chroma >= {PRED_CHROMA_MIN:g} and the "
        f"same class (pooled counts, not a mean over images). hue_recall: their mean over the classes with more than "
        f"{HUE_MIN_PIXELS} such truth pixels (hue_truth_pixels_<class> holds the counts)."
    )

    def select(self, stats):
        return stats.hue_recall()

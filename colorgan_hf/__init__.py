"""colorgan-hf: colorize black-and-white photographs with a GAN.

>>> from colorgan_hf import colorize
>>> colorize("grandma.jpg").save("grandma_color.png")
"""

from .errors import ColorGANError, ImageLoadError, MissingExtraError, ModelLoadError, OptionError
from .models import ColorDiscriminator, ColorGenerator, GANLoss
from .pipeline import colorize, suggest_hints
from .registry import load_default, load_model
from .video import VideoLoadError, colorize_video

__version__ = "0.1.0"

__all__ = [
    "ColorDiscriminator",
    "ColorGANError",
    "ColorGenerator",
    "GANLoss",
    "ImageLoadError",
    "MissingExtraError",
    "ModelLoadError",
    "OptionError",
    "VideoLoadError",
    "colorize",
    "colorize_video",
    "load_default",
    "load_model",
    "suggest_hints",
    "__version__",
]

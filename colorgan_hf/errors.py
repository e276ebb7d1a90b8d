"""The package's own error types: everything a user can cause raises one of these."""

from __future__ import annotations


class ColorGANError(Exception):
    """Base class of every error colorgan-hf raises on purpose."""


class ImageLoadError(ColorGANError, ValueError):
    """An image could not be read: missing, empty, corrupt, not an image, or too large.

    The message names the file (when there is one) and the reason.
    """


class ModelLoadError(ColorGANError, ValueError):
    """A model could not be loaded: missing files, a bad config, or unsafe weights."""

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


class OptionError(ColorGANError, ValueError):
    """An option is out of range, not a finite number, or names something unusable (a device).

    The message names the option and the problem.
    """


class MissingExtraError(ColorGANError, ImportError):
    """A feature needs an optional extra (``pip install "colorgan-hf[EXTRA]"``) that is not installed.

    The message names the feature and the extra to install.
    """


class HubError(ColorGANError, OSError):
    """The Hugging Face Hub could not be reached, or refused a push (no login, no write access).

    The message names the repository and says that nothing was pushed.
    """


def first_line(error: BaseException) -> str:
    """The gist of an error for a one-line message: its text's first line, else its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

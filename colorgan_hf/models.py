"""The generator, the discriminator and the GAN loss, for both recipes.

Two architectures live side by side, chosen by ``architecture=``:

* ``"paper"``: the networks of Demirel & Yuce, "Black and white image colorization using
  generative adversarial networks", section 3.2, as written: gray 120x120 in, RGB out; a
  CNN discriminator that ends in fully connected layers.
* ``"unet"`` (the default): ours. A pix2pix-style Lab U-Net that predicts the a*b*
  chroma from L, fully convolutional so it runs at any size that is a multiple of its
  stride, paired with a spectrally normalised PatchGAN discriminator.

Both classes are :class:`huggingface_hub.PyTorchModelHubMixin` models: their keyword
arguments are written to ``config.json`` and weights to ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
import typing
from typing import Literal

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from .color import denormalize_ab, gray_from_l, normalize_l, rgb_to_lab

ARCHITECTURES = ("unet", "paper")
HUB_METADATA = dict(
    library_name="colorgan-hf",
    pipeline_tag="image-to-image",
    license="mit",
    tags=["colorization", "image-colorization", "gan", "pytorch"],
    repo_url="https://github.com/colorgan-hf/colorgan-hf",
)


def _resolve_file(model_id: str, filename: str, why: str, download: dict) -> str:
    """The local path of ``filename`` in a folder or a Hub repository (downloaded to the cache)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    from .errors import ModelLoadError

    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if not os.path.isfile(path):
            raise ModelLoadError(f"{model_id}: no {filename}{why}")
        return path
    try:
        return hf_hub_download(repo_id=model_id, filename=filename, revision=download.get("revision"),
                               cache_dir=download.get("cache_dir"), force_download=download.get("force_download", False),
                               token=download.get("token"), local_files_only=download.get("local_files_only", False))
    except EntryNotFoundError:
        raise ModelLoadError(f"{model_id}: no {filename} in the repository{why}") from None


class SafetensorsHubMixin(PyTorchModelHubMixin):
    """``PyTorchModelHubMixin`` that loads safetensors only, and strictly.

    The stock mixin falls back to a pickled ``pytorch_model.bin`` and loads with
    ``strict=False``; here a repository without ``model.safetensors`` is refused, and
    weights whose names or shapes do not match the config raise a clear error.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load from a local folder or a Hub id, after checking ``config.json``.

        Unknown keys, values of the wrong type and an unknown architecture are refused
        with :class:`~colorgan_hf.errors.ModelLoadError` before any weights are read.
        """
        cls.validate_config(cls._read_config(str(pretrained_model_name_or_path), kwargs), str(pretrained_model_name_or_path))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _read_config(cls, model_id: str, kwargs: dict) -> dict:
        from huggingface_hub import constants

        from .errors import ModelLoadError

        path = _resolve_file(model_id, constants.CONFIG_NAME, "", kwargs)
        try:
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelLoadError(f"{path}: not a readable JSON config ({error})") from None
        if not isinstance(config, dict):
            raise ModelLoadError(f"{path}: the config must be a JSON object, got {type(config).__name__}")
        return config

    @classmethod
    def validate_config(cls, config: dict, where: str = "config.json") -> None:
        """Refuse unknown keys and values whose type differs from the ``__init__`` annotation."""
        from .errors import ModelLoadError

        hints = typing.get_type_hints(cls.__init__)
        hints.pop("return", None)
        unknown = sorted(set(config) - set(hints))
        if unknown:
            raise ModelLoadError(f"{where}: unknown config keys {unknown} for {cls.__name__} (expected some of {sorted(hints)})")
        for key, value in config.items():
            expected = hints[key]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ModelLoadError(f"{where}: config key {key!r} must be {expected.__name__}, got {value!r}")
        if "architecture" in config and config["architecture"] not in ARCHITECTURES:
            raise ModelLoadError(f"{where}: unknown architecture {config['architecture']!r}: expected one of {', '.join(ARCHITECTURES)}")

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu", strict: bool = True, **model_kwargs):
        from huggingface_hub import constants
        from safetensors.torch import load_file

        from .errors import ModelLoadError

        model = cls(**model_kwargs)  # a bad config fails here, before any weights are read
        download = dict(revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                        local_files_only=local_files_only)
        weights = _resolve_file(model_id, constants.SAFETENSORS_SINGLE_FILE, "; colorgan-hf loads safetensors weights only, never pickles",
                                download)
        try:
            state = load_file(weights, device=str(map_location))
        except Exception as error:  # safetensors raises its own error types for corrupt files
            raise ModelLoadError(f"{weights}: not a readable safetensors file ({error})") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(f"{weights}: weights do not match config.json ({model_kwargs}): {error}") from None
        return model


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}: expected one of {', '.join(ARCHITECTURES)}")


# --------------------------------------------------------------------------------------
# The paper's networks
# --------------------------------------------------------------------------------------


def _paper_conv(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.LeakyReLU(0.2, inplace=True))


class PaperGenerator(nn.Module):
    """The paper's U-Net generator (section 3.2, figure 4).

    Written from the text; where it is silent we chose, as noted:

    * encoder block i: conv5x5 -> conv3x3 -> conv3x3 (LeakyReLU 0.2 after each), widths
      ``base, 2*base, 4*base`` (the paper gives no widths); the block output is the skip;
      then a 2x2 max-pool as the downsampling step (120 -> 60 -> 30 -> 15);
    * bottleneck: one conv3x3 to ``8*base`` channels with tanh, as written;
    * decoder block i: 2x2 transposed convolution (x2), concatenation with the matching
      encoder output, then conv3x3 -> conv3x3 -> conv5x5 with LeakyReLU;
    * output: a 1x1 convolution to 3 channels and a sigmoid, so RGB lands in [0, 1].

    Input (B, 1, 120, 120) gray in [0, 1]; output (B, 3, 120, 120) RGB in [0, 1]. The
    spatial size must be divisible by 8; the paper trains and infers at 120x120.
    """

    def __init__(self, base_channels: int = 32) -> None:
        super().__init__()
        widths = [base_channels, 2 * base_channels, 4 * base_channels]
        self.encoders = nn.ModuleList()
        c_in = 1
        for c in widths:
            self.encoders.append(nn.Sequential(_paper_conv(c_in, c, 5), _paper_conv(c, c, 3), _paper_conv(c, c, 3)))
            c_in = c
        self.bottleneck = nn.Sequential(nn.Conv2d(c_in, 8 * base_channels, 3, padding=1), nn.Tanh())
        c_in = 8 * base_channels
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for c in reversed(widths):
            self.upsamplers.append(nn.ConvTranspose2d(c_in, c, 2, stride=2))
            self.decoders.append(nn.Sequential(_paper_conv(2 * c, c, 3), _paper_conv(c, c, 3), _paper_conv(c, c, 5)))
            c_in = c
        self.head = nn.Sequential(nn.Conv2d(c_in, 3, 1), nn.Sigmoid())

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        x = gray  # (B, 1, 120, 120), gray in [0, 1]
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)  # (B, c, s, s) for s = 120, 60, 30
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)  # (B, 8*base, 15, 15), in [-1, 1]
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)  # (B, 3, 120, 120), RGB in [0, 1]


class PaperDiscriminator(nn.Module):
    """The paper's CNN discriminator (section 3.2, figure 5).

    Four blocks of two conv3x3 (the paper's "n x n"; we pick 3) with LeakyReLU 0.2 and a
    2x2 max-pool (120 -> 60 -> 30 -> 15 -> 7), widths ``base, 2*base, 4*base, 4*base``;
    flatten; four fully connected layers 512 -> 256 -> 64 -> 1 with LeakyReLU between.
    The paper ends in a sigmoid; ``forward`` returns the logit before it and
    :meth:`ColorDiscriminator.probability` applies it, so training can use the
    numerically stable ``BCEWithLogitsLoss`` (the same loss value as BCE on the sigmoid).

    Input (B, 3, S, S) RGB in [0, 1] with S = ``image_size``; output (B,) logits.
    """

    def __init__(self, base_channels: int = 32, image_size: int = 120) -> None:
        super().__init__()
        widths = [base_channels, 2 * base_channels, 4 * base_channels, 4 * base_channels]
        layers: list[nn.Module] = []
        c_in, side = 3, image_size
        for c in widths:
            layers += [_paper_conv(c_in, c, 3), _paper_conv(c, c, 3), nn.MaxPool2d(2)]
            c_in, side = c, side // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, 512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(256, 64),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(64, 1),
        )

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(rgb)).squeeze(1)  # (B,) logits


# --------------------------------------------------------------------------------------
# Our networks
# --------------------------------------------------------------------------------------


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNetGenerator(nn.Module):
    """Lab U-Net: L in, a*b* out, fully convolutional.

    Each level halves the resolution with a strided conv and doubles the width (capped at
    ``8*base``); the decoder mirrors it with 2x2 transposed convs and concatenated skips::

        L (1, H, W) --stem--> s0 (c0, H) ---------------------------------concat--> up0 --> head --> ab (2, H, W)
                               |                                                        ^
                             down1 --> s1 (c1, H/2) ---------------------concat--> up1
                                        |                                            ^
                                      down2 ... downN --> global context --> upN-1 ...

    The bottleneck is given a global context vector (its spatial mean through a linear
    layer, added back at every position, as in Iizuka et al. 2016), so a patch of sky knows
    whether the whole scene is a snowfield or a sunset: cheap, and it helps chroma that
    depends on the whole picture.

    With the defaults (``base_channels=32``, ``depth=4``) it has 1.81 M parameters and costs
    4.5 GFLOPs at 256x256 (``python bench/model_stats.py`` measures both); the size must be
    a multiple of ``2**depth`` (16).
    Input (B, 1, H, W) L scaled to [-1, 1]; output (B, 2, H, W) ab scaled to [-1, 1].
    """

    def __init__(self, base_channels: int = 32, depth: int = 4) -> None:
        super().__init__()
        widths = [max(base_channels // 2, 8)] + [min(base_channels * 2**i, 8 * base_channels) for i in range(depth)]
        self.stem = _conv_bn_relu(1, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(widths[i], widths[i + 1], stride=2), _conv_bn_relu(widths[i + 1], widths[i + 1]))
            for i in range(depth)
        )
        self.context = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.ReLU(inplace=True))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.fuses = nn.ModuleList(_conv_bn_relu(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Sequential(nn.Conv2d(widths[0], 2, 1), nn.Tanh())

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x = self.stem(l_norm)  # (B, c0, H, W)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)  # (B, c_i, H / 2**i, W / 2**i)
        skips.pop()  # the bottleneck is no skip of its own
        x = x + self.context(x.mean(dim=(2, 3)))[:, :, None, None]  # (B, c_N, H/16, W/16)
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips)):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return self.head(x)  # (B, 2, H, W), ab in [-1, 1]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017) with spectral normalisation.

    conv4x4 stride 2 three times, then two stride-1 convs: each output logit judges a
    70x70 patch of the input, so the loss looks at local colour realism at any image size.
    Input (B, 3, H, W): L and ab, each scaled to [-1, 1]; output (B, 1, H/8 - 2, W/8 - 2) logits.
    """

    def __init__(self, base_channels: int = 64) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        c = base_channels
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, c, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(4 * c, 8 * c, 4, stride=1, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(8 * c, 1, 4, stride=1, padding=1)),
        )

    def forward(self, lab_norm: torch.Tensor) -> torch.Tensor:
        return self.net(lab_norm)


# --------------------------------------------------------------------------------------
# The Hub models users load
# --------------------------------------------------------------------------------------


class ColorGenerator(nn.Module, SafetensorsHubMixin, **HUB_METADATA):
    """Colorization generator: ``architecture="unet"`` (ours, default) or ``"paper"``.

    Args:
        architecture: ``"unet"`` (Lab, L -> ab, any size that is a multiple of ``stride``)
            or ``"paper"`` (gray 120x120 -> RGB, the paper's network).
        base_channels: width of the first level; both networks scale from it.
        depth: number of downsamplings of the ``unet`` (the paper's network always has 3).
        image_size: the fixed input side of the ``paper`` network (120 in the paper);
            the ``unet`` has no fixed size.

    ``forward`` speaks each network's own language (see :class:`UNetGenerator` and
    :class:`PaperGenerator`); :meth:`predict_ab` is the common one the pipeline uses.
    """

    def __init__(self, architecture: str = "unet", base_channels: int = 32, depth: int = 4, image_size: int = 120) -> None:
        super().__init__()
        _check_architecture(architecture)
        if architecture == "paper" and image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 for the paper network, got {image_size}")
        self.architecture = architecture
        self.image_size = image_size
        self.depth = 3 if architecture == "paper" else depth
        if architecture == "paper":
            self.net: nn.Module = PaperGenerator(base_channels)
        else:
            self.net = UNetGenerator(base_channels, depth)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return 2**self.depth

    @property
    def input_size(self) -> int | None:
        """The fixed square input side, or None when the network takes any size."""
        return self.image_size if self.architecture == "paper" else None

    @property
    def input_space(self) -> Literal["gray", "lab"]:
        return "gray" if self.architecture == "paper" else "lab"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def generate_model_card(self, *args, **kwargs):
        """The card ``save_pretrained``/``push_to_hub`` write; ``model_card_kwargs`` go to
        :func:`colorgan_hf.card.make_card` (``evaluations``, ``training``, ``samples``, ...)."""
        from .card import make_card

        return make_card(self._hub_mixin_config, sum(p.numel() for p in self.parameters()), **kwargs)

    def predict_ab(self, l_channel: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> predicted a*b* (B, 2, H, W) in Lab units.

        For the paper network the L channel is shown to it as a gray image and the chroma
        of its RGB output is kept; its lightness is discarded, so both architectures leave
        the lightness of a photo untouched.
        """
        if self.architecture == "paper":
            rgb = self(gray_from_l(l_channel))  # (B, 3, S, S) in [0, 1]
            return rgb_to_lab(rgb.float())[:, 1:]
        return denormalize_ab(self(normalize_l(l_channel)).float())  # (B, 2, H, W)


class ColorDiscriminator(nn.Module, SafetensorsHubMixin, **HUB_METADATA):
    """Discriminator matched to :class:`ColorGenerator`'s architecture.

    Args:
        architecture: ``"unet"`` (PatchGAN on Lab) or ``"paper"`` (CNN + FC on RGB).
        base_channels: width of the first convolution.
        image_size: input side of the ``paper`` discriminator (its FC layers fix it).

    ``forward`` returns logits (the paper's sigmoid is applied in the loss, or by
    :meth:`probability`).
    """

    def __init__(self, architecture: str = "unet", base_channels: int = 64, image_size: int = 120) -> None:
        super().__init__()
        _check_architecture(architecture)
        self.architecture = architecture
        if architecture == "paper":
            self.net: nn.Module = PaperDiscriminator(base_channels, image_size)
        else:
            self.net = PatchDiscriminator(base_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """The probability that ``x`` is a real photo, as the paper's sigmoid output."""
        return torch.sigmoid(self(x))


class GANLoss(nn.Module):
    """Binary cross-entropy GAN loss on logits, with the paper's noisy labels.

    Real targets are ``1 - label_noise * u`` and fake targets ``label_noise * u`` with
    ``u ~ U(0, 1)`` drawn per element: the paper adds random noise to its matrices of ones
    and zeros "to slow down the learning of the discriminator". ``label_noise=0`` gives the
    plain pix2pix loss.
    """

    def __init__(self, label_noise: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}")
        self.label_noise = label_noise

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        noise = self.label_noise * torch.rand_like(logits) if self.label_noise else torch.zeros_like(logits)
        target = 1.0 - noise if target_is_real else noise
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())

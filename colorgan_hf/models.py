"""The generators, the discriminators and the GAN loss, for every recipe.

Each architecture is a class in a registry (as timm's), and knows its own spaces: what
it takes in, what it gives out, what it is trained against, and what its discriminator
judges. :class:`ColorGenerator` and :class:`ColorDiscriminator` are the Hub models users
load: ``architecture=`` picks the registry entry, the other keyword arguments are that
entry's own, and all of them go to ``config.json``.

Generators (``ColorGenerator(architecture=...)``):

* ``"paper"``: Demirel & Yuce, "Black and white image colorization using generative
  adversarial networks", section 3.2, as written: gray 120x120 in, RGB out.
* ``"unet"``: a Lab U-Net regressing a*b* from L (the earlier default).
* ``"unet_bins"``: the same trunk classifying a*b* into quantized bins (Zhang et al.
  2016) at half resolution, decoded by an annealed mean whose temperature is the
  ``vividness`` knob.
* ``"unet_pair"``: two such U-Nets (regression) of different widths, their a*b*
  averaged with a fixed mix (the default).
* ``"unet_semantic"``: the Lab U-Net with a frozen ImageNet encoder's features
  (:mod:`colorgan_hf.encoders`) added at its bottleneck; ``"semantic_bins"``: the same
  with the ``unet_bins`` head; ``"semantic_pair"``: a ``unet_pair`` whose first member
  is a ``unet_semantic``; ``"semantic_bins_pair"``: a ``semantic_bins`` and a U-Net,
  their decoded a*b* mixed.

Discriminators (``ColorDiscriminator(architecture=...)``): ``"paper"`` (CNN + fully
connected, on RGB) and ``"patchgan"`` (pix2pix's PatchGAN with spectral norm, on L+ab).
"""

from __future__ import annotations

import os
from typing import Callable, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .color import AB_SCALE, denormalize_ab, denormalize_l, gray_from_l, lab_to_rgb, normalize_ab, normalize_l, rgb_to_lab
from .encoders import MobileNetV2Features
from .errors import ModelLoadError
from .hub import HUB_METADATA, SafetensorsHubMixin, check_options

Batch = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------


class GeneratorNet(nn.Module):
    """What every generator architecture tells the pipeline and the trainer about itself."""

    architecture: ClassVar[str]
    # The discriminator architecture this generator is trained against.
    discriminator: ClassVar[str]
    # Config keys that older configs of this architecture may carry and that mean nothing to it.
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ()
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {}
    # How training photos are sized for it: random crops of a short side twice the crop, or squashed squares.
    TRAINING_RESIZE: ClassVar[str] = "short_side"
    # Whether its target is a*b*, whose pixels colour re-balancing can weigh.
    AB_TARGET: ClassVar[bool] = True
    # Another architecture whose recipe trains it as it is (None: only its own).
    TRAINS_UNDER: ClassVar[str | None] = None

    @classmethod
    def size_options(cls, resolution: int) -> dict:
        """Constructor arguments that fix the input size (for it and its discriminator); none for fully convolutional nets."""
        return {}

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        raise NotImplementedError

    @property
    def input_size(self) -> int | None:
        """The fixed square input side, or None when the network takes any size."""
        return None

    def config(self) -> dict:
        """This architecture's own constructor arguments."""
        raise NotImplementedError

    def encode(self, l_channel: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> the network's input."""
        raise NotImplementedError

    def disagreement(self, x: torch.Tensor) -> torch.Tensor | None:
        """How far apart the a*b* of its member networks are at each pixel, (B, 1, H, W) in
        [-1, 1] ab units, for architectures made of several; None for a single network."""
        return None

    def training_pair(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``rgb`` (B, 3, S, S) and ``gray`` (B, 1, S, S) in [0, 1] -> (input, target)."""
        raise NotImplementedError

    def image(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        """The network output as an image in the target's space (differentiable): what
        the pixel loss compares and the discriminator judges. ``vividness`` matters only to
        architectures that predict a distribution of colours (``unet_bins``, ``semantic_bins``)."""
        return output

    def decode_ab(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        """The network output -> a*b* (B, 2, H, W) in Lab units, at the input's size."""
        raise NotImplementedError

    def image_to_rgb(self, net_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """An image in the target's space (what :meth:`image` gives, or a training target) as RGB
        (B, 3, H, W) in [0, 1], differentiably: a*b* in [-1, 1] under the input's L by default."""
        return lab_to_rgb(torch.cat([denormalize_l(net_input.float()), denormalize_ab(image.float())], dim=1))

    def to_rgb(self, net_input: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] for pictures of the training run."""
        return self.image_to_rgb(net_input, self.image(output))

    def auxiliary_loss(self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor | None:
        """A loss of this architecture's own beside the pixel loss (None: there is none)."""
        return None


class DiscriminatorNet(nn.Module):
    """What every discriminator architecture tells the trainer about itself."""

    architecture: ClassVar[str]
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ()
    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {}

    def config(self) -> dict:
        raise NotImplementedError

    def judge_input(self, gen_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees of a (generator input, real or generated image) pair."""
        raise NotImplementedError


GENERATORS: dict[str, type[GeneratorNet]] = {}
DISCRIMINATORS: dict[str, type[DiscriminatorNet]] = {}
# Discriminator configs saved before the registry named the PatchGAN after its generator.
DISCRIMINATOR_ALIASES = {"unet": "patchgan"}
NetT = TypeVar("NetT", bound=type)


def _register(registry: dict) -> Callable[[str], Callable[[NetT], NetT]]:
    def register(name: str) -> Callable[[NetT], NetT]:
        def add(cls: NetT) -> NetT:
            cls.architecture = name
            registry[name] = cls
            return cls

        return add

    return register


register_generator = _register(GENERATORS)
register_discriminator = _register(DISCRIMINATORS)


def _lookup(registry: dict, architecture: str) -> type:
    if architecture not in registry:
        raise ValueError(f"unknown architecture {architecture!r}: expected one of {', '.join(sorted(registry))}")
    return registry[architecture]


def vividness_architectures() -> list[str]:
    """The generator architectures that classify colours (predict a distribution over them):
    the only ones ``vividness`` reaches; the others predict one colour a pixel."""
    return [name for name, net in GENERATORS.items() if "vividness" in net.BOUNDS]


# --------------------------------------------------------------------------------------
# The paper's networks
# --------------------------------------------------------------------------------------


def _paper_conv(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.LeakyReLU(0.2, inplace=True))


@register_generator("paper")
class PaperGenerator(GeneratorNet):
    """The paper's U-Net generator (section 3.2, figure 4).

    Written from the text; where it is silent we chose, as noted:

    * encoder block i: conv5x5 -> conv3x3 -> conv3x3 (LeakyReLU 0.2 after each), widths
      ``base, 2*base, 4*base`` (the paper gives no widths); the block output is the skip;
      then a 2x2 max-pool as the downsampling step (120 -> 60 -> 30 -> 15);
    * bottleneck: one conv3x3 to ``8*base`` channels with tanh, as written;
    * decoder block i: 2x2 transposed convolution (x2), concatenation with the matching
      encoder output, then conv3x3 -> conv3x3 -> conv5x5 with LeakyReLU;
    * output: a 1x1 convolution to 3 channels and a sigmoid, so RGB lands in [0, 1].

    Input (B, 1, S, S) gray in [0, 1]; output (B, 3, S, S) RGB in [0, 1], S = ``image_size``
    (120 in the paper, a multiple of 8).
    """

    discriminator = "paper"
    LEGACY_KEYS = ("depth",)
    BOUNDS = {"base_channels": (1, 256), "image_size": (8, 512)}
    TRAINING_RESIZE = "square"  # the paper squashes whole photos to 120x120
    AB_TARGET = False  # RGB out

    @classmethod
    def size_options(cls, resolution: int) -> dict:
        return {"image_size": resolution}

    def __init__(self, base_channels: int = 32, image_size: int = 120) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 for the paper network, got {image_size}")
        self.base_channels, self.image_size = base_channels, image_size
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

    @property
    def stride(self) -> int:
        return 8

    @property
    def input_size(self) -> int:
        return self.image_size

    def config(self) -> dict:
        return {"base_channels": self.base_channels, "image_size": self.image_size}

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

    def encode(self, l_channel: torch.Tensor) -> torch.Tensor:
        # The network was trained on gamma-encoded gray images: show L as one.
        return gray_from_l(l_channel)

    def training_pair(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["gray"], batch["rgb"]  # (B, 1, S, S) gray and (B, 3, S, S) RGB, both in [0, 1]

    def decode_ab(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        # Only the chroma of the RGB output is kept: the photo keeps its own lightness.
        return rgb_to_lab(output.float())[:, 1:]

    def image_to_rgb(self, net_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return image.float().clamp(0, 1)


@register_discriminator("paper")
class PaperDiscriminator(DiscriminatorNet):
    """The paper's CNN discriminator (section 3.2, figure 5).

    Four blocks of two conv3x3 (the paper's "n x n"; we pick 3) with LeakyReLU 0.2 and a
    2x2 max-pool (120 -> 60 -> 30 -> 15 -> 7), widths ``base, 2*base, 4*base, 4*base``;
    flatten; four fully connected layers 512 -> 256 -> 64 -> 1 with LeakyReLU between.
    The paper ends in a sigmoid; ``forward`` returns the logit before it and
    :meth:`ColorDiscriminator.probability` applies it, so training can use the
    numerically stable ``BCEWithLogitsLoss`` (the same loss value as BCE on the sigmoid).

    Input (B, 3, S, S) RGB in [0, 1] with S = ``image_size``; output (B,) logits.
    """

    LEGACY_KEYS = ()
    BOUNDS = {"base_channels": (1, 256), "image_size": (16, 512)}

    def __init__(self, base_channels: int = 32, image_size: int = 120) -> None:
        super().__init__()
        self.base_channels, self.image_size = base_channels, image_size
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

    def config(self) -> dict:
        return {"base_channels": self.base_channels, "image_size": self.image_size}

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(rgb)).squeeze(1)  # (B,) logits

    def judge_input(self, gen_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return image  # the RGB image alone, as in the paper


# --------------------------------------------------------------------------------------
# Our networks
# --------------------------------------------------------------------------------------


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_generator("unet")
class UNetGenerator(GeneratorNet):
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

    With ``base_channels=32, depth=4`` it has 1.81 M parameters and costs 4.5 GFLOPs at
    256x256 (``python bench/model_stats.py`` measures both); the size must be a multiple
    of ``2**depth``. Input (B, 1, H, W) L scaled to [-1, 1]; output (B, 2, H, W) ab in [-1, 1].
    """

    discriminator = "patchgan"
    LEGACY_KEYS = ("image_size",)
    BOUNDS = {"base_channels": (1, 256), "depth": (1, 7)}
    # The decoder level the head reads (0: full resolution).
    head_level: int = 0

    def __init__(self, base_channels: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.base_channels, self.depth = base_channels, depth
        self.widths = [max(base_channels // 2, 8)] + [min(base_channels * 2**i, 8 * base_channels) for i in range(depth)]
        widths = self.widths
        self.stem = _conv_bn_relu(1, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(widths[i], widths[i + 1], stride=2), _conv_bn_relu(widths[i + 1], widths[i + 1]))
            for i in range(depth)
        )
        self.context = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.ReLU(inplace=True))
        # Decoder levels depth-1 .. head_level; a head at level 1 skips the full-resolution one.
        levels = list(reversed(range(self.head_level, depth)))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in levels)
        self.fuses = nn.ModuleList(_conv_bn_relu(2 * widths[i], widths[i]) for i in levels)
        self.head = self.make_head(widths[self.head_level])

    def make_head(self, channels: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(channels, 2, 1), nn.Tanh())

    @property
    def stride(self) -> int:
        return 2**self.depth

    def config(self) -> dict:
        return {"base_channels": self.base_channels, "depth": self.depth}

    def features(self, l_norm: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> the decoder's output at ``head_level``, (B, c, H / 2**level, W / 2**level)."""
        x = self.stem(l_norm)  # (B, c0, H, W)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)  # (B, c_i, H / 2**i, W / 2**i)
        skips.pop()  # the bottleneck is no skip of its own
        x = self.bottleneck(x, l_norm)  # (B, c_N, H / 2**N, W / 2**N)
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips[self.head_level:])):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return x

    def bottleneck(self, x: torch.Tensor, l_norm: torch.Tensor) -> torch.Tensor:
        """What the decoder starts from: the deepest features (B, c_N, h, w) with the global context added."""
        return x + self.context(x.mean(dim=(2, 3)))[:, :, None, None]

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(l_norm))  # (B, 2, H, W), ab in [-1, 1]

    def encode(self, l_channel: torch.Tensor) -> torch.Tensor:
        return normalize_l(l_channel)

    def training_pair(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        lab = rgb_to_lab(batch["rgb"].float())
        return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])  # (B, 1, S, S) and (B, 2, S, S) in [-1, 1]

    def decode_ab(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        return denormalize_ab(self.image(output, vividness).float())


@register_generator("unet_pair")
class UNetPairGenerator(GeneratorNet):
    """Two Lab U-Nets of different widths whose a*b* are averaged: ``(1 - mix) * first + mix * second``.

    Two networks trained apart make different mistakes, so their average is nearer the truth
    than either (PSNR and CIEDE2000), while the wider, more colourful one keeps most of its
    colour (the default card's ablation, row U). Each member is a :class:`UNetGenerator`
    of ``depth`` levels; a convex mix of their tanh outputs stays in [-1, 1].
    Input (B, 1, H, W) L scaled to [-1, 1]; output (B, 2, H, W) ab in [-1, 1].
    """

    discriminator = "patchgan"
    BOUNDS = {"base_channels": (1, 256), "second_base_channels": (1, 256), "depth": (1, 7), "mix": (0.0, 1.0)}
    # `--init_generator default` with the default (unet) recipe fine-tunes the pair as a whole.
    TRAINS_UNDER = "unet"

    # The architecture of the first member (the second is always a plain U-Net).
    FIRST: ClassVar[type[UNetGenerator]] = UNetGenerator

    def __init__(self, base_channels: int = 32, second_base_channels: int = 48, depth: int = 4, mix: float = 0.65) -> None:
        super().__init__()
        self.mix = float(mix)
        self.first = self.make_first(base_channels, depth)
        self.second = UNetGenerator(second_base_channels, depth)

    def make_first(self, base_channels: int, depth: int) -> UNetGenerator:
        return self.FIRST(base_channels, depth)

    @property
    def stride(self) -> int:
        return self.first.stride

    def config(self) -> dict:
        return {"base_channels": self.first.base_channels, "second_base_channels": self.second.base_channels,
                "depth": self.first.depth, "mix": self.mix}

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.mix) * self.first(l_norm) + self.mix * self.second(l_norm)  # (B, 2, H, W), ab in [-1, 1]

    def disagreement(self, l_norm: torch.Tensor) -> torch.Tensor:
        # Where two networks trained apart disagree, the colour is least sure: (B, 1, H, W).
        return (self.first(l_norm) - self.second(l_norm)).norm(dim=1, keepdim=True)

    encode = UNetGenerator.encode
    training_pair = UNetGenerator.training_pair
    decode_ab = UNetGenerator.decode_ab


@register_generator("unet_semantic")
class SemanticUNetGenerator(UNetGenerator):
    """The Lab U-Net with a frozen ImageNet classifier's features added at its bottleneck.

    Colour follows from what a thing is, which a few thousand photos of six scene types do
    not teach (the default card's rows N-T). A MobileNetV2 trained on ImageNet
    (:mod:`colorgan_hf.encoders`) reads the same gray picture; its stride-16 and stride-32
    features, brought to the bottleneck's size, go through a small 1x1 projection and are
    added to the U-Net's own deepest features (as Baldassarre et al. 2017's "Deep
    Koalarization" fuses an Inception embedding). The encoder never trains: its weights
    are buffers of a frozen module, converted once by ``train/import_encoder.py`` and
    saved inside this generator's own safetensors. The projection's last layer starts at
    zero, so a trained ``unet`` started from (``--init_generator``) predicts exactly what
    it did before training.

    The encoder adds 2.3 M parameters: 5.50 GFLOPs and 58.5 ms at 256x256 in all against the
    U-Net's 4.52 and 28.2 (``python bench/model_stats.py``; depthwise convolutions are slow on
    a CPU). Input (B, 1, H, W) L in [-1, 1]; output (B, 2, H, W) ab in [-1, 1].
    """

    def __init__(self, base_channels: int = 32, depth: int = 4) -> None:
        super().__init__(base_channels, depth)
        self.add_encoder()

    def add_encoder(self) -> None:
        """Build the frozen encoder and the projection that adds its features at the bottleneck."""
        self.encoder = MobileNetV2Features().requires_grad_(False).eval()
        width = self.widths[-1]
        self.semantic = nn.Sequential(
            nn.Conv2d(MobileNetV2Features.MID_CHANNELS + MobileNetV2Features.TOP_CHANNELS, width, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1),
        )
        nn.init.zeros_(self.semantic[-1].weight)
        nn.init.zeros_(self.semantic[-1].bias)

    def load_encoder(self, path: str | os.PathLike) -> None:
        """Load the frozen encoder's weights from a safetensors file written by ``train/import_encoder.py``."""
        self.encoder.load_weights(path)

    def train(self, mode: bool = True) -> "SemanticUNetGenerator":
        super().train(mode)
        self.encoder.eval()  # frozen: its batch-norm statistics are the classifier's own
        return self

    def bottleneck(self, x: torch.Tensor, l_norm: torch.Tensor) -> torch.Tensor:
        x = super().bottleneck(x, l_norm)
        with torch.no_grad():
            gray = gray_from_l(denormalize_l(l_norm.float()))  # (B, 1, H, W) in [0, 1], as the classifier saw photos
            mid, top = self.encoder(gray.to(x.dtype))  # (B, 96, H/16, W/16), (B, 1280, H/32, W/32)
            size = x.shape[-2:]
            mid = F.interpolate(mid, size=size, mode="bilinear", align_corners=False)
            top = F.interpolate(top, size=size, mode="bilinear", align_corners=False)
        return x + self.semantic(torch.cat([mid, top], dim=1))  # (B, c_N, h, w)


@register_generator("semantic_pair")
class SemanticPairGenerator(UNetPairGenerator):
    """A :class:`UNetPairGenerator` whose first member is a ``unet_semantic`` (it reads the
    frozen ImageNet encoder); the second is a plain U-Net. Joined by ``train/combine.py``.
    Input (B, 1, H, W) L in [-1, 1]; output (B, 2, H, W) ab in [-1, 1]."""

    FIRST = SemanticUNetGenerator


def ab_bin_centers(bin_size: float) -> torch.Tensor:
    """(Q, 2) centres, in [-1, 1] ab units, of the ``bin_size`` grid cells of the ab plane
    that hold an sRGB colour at some lightness (Zhang et al. 2016: 313 for a grid of 10)."""
    cells = int(round(2 * AB_SCALE / bin_size))
    edges = torch.linspace(-AB_SCALE, AB_SCALE, cells + 1)
    fine = 8  # sample each cell on a fine grid: a cell is in gamut if any sample is
    offsets = (torch.arange(fine) + 0.5) / fine * bin_size
    samples_1d = (edges[:-1, None] + offsets).flatten()  # (cells * fine,)
    a, b = torch.meshgrid(samples_1d, samples_1d, indexing="ij")
    l_values = torch.linspace(1, 99, 50)
    lab = torch.stack([l_values[:, None, None].expand(-1, *a.shape), a.expand(len(l_values), -1, -1),
                       b.expand(len(l_values), -1, -1)], dim=1)  # (L, 3, n, n)
    rgb = lab_to_rgb(lab, clip=False)
    inside = ((rgb >= 0) & (rgb <= 1)).all(dim=1).any(dim=0)  # (n, n)
    inside = inside.reshape(cells, fine, cells, fine).any(dim=3).any(dim=1)  # (cells, cells)
    centers = (edges[:-1] + edges[1:]) / 2
    ia, ib = inside.nonzero(as_tuple=True)
    return torch.stack([centers[ia], centers[ib]], dim=1) / AB_SCALE


@register_generator("unet_bins")
class UNetBinsGenerator(UNetGenerator):
    """The Lab U-Net trunk classifying a*b* into quantized bins (Zhang et al. 2016).

    The head reads the decoder at half resolution (the full-resolution level, 14% of the
    trunk's FLOPs, is not built: chroma needs no more detail than that, the pipeline
    upsamples it anyway) and gives a distribution over the in-gamut cells of a
    ``bin_size`` grid of the ab plane. :meth:`image` decodes it to a*b* by the annealed
    mean: the mean of the distribution sharpened by a temperature T,
    ``softmax(logits / T)``. T = 1 is the plain mean (the safest, most muted colours);
    lower T moves towards the most likely colour (more vivid, sometimes wrong).
    ``vividness`` v in [0, 1] sets T = 1 - 0.9 v; the config's ``vividness`` is the default.

    Input (B, 1, H, W) L in [-1, 1]; output (B, Q, H/2, W/2) logits.
    """

    LEGACY_KEYS = ()
    BOUNDS = {"base_channels": (1, 256), "depth": (2, 7), "bin_size": (8, 40), "vividness": (0.0, 1.0)}
    head_level = 1

    def __init__(self, base_channels: int = 32, depth: int = 4, bin_size: int = 10, vividness: float = 0.5) -> None:
        centers = ab_bin_centers(bin_size)  # (Q, 2) in [-1, 1]: a function of bin_size, so not saved
        self.bin_size, self.vividness, self.num_bins = bin_size, float(vividness), len(centers)  # make_head needs num_bins
        super().__init__(base_channels, depth)
        self.register_buffer("centers", centers, persistent=False)
        # (cells, cells) grid cell -> class index, -1 outside the gamut.
        cells = int(round(2 * AB_SCALE / bin_size))
        cell_of = ((centers + 1) * cells / 2 - 0.5).round().long()  # (Q, 2)
        grid_to_class = torch.full((cells, cells), -1, dtype=torch.long)
        grid_to_class[cell_of[:, 0], cell_of[:, 1]] = torch.arange(len(centers))
        self.register_buffer("grid_to_class", grid_to_class, persistent=False)

    def make_head(self, channels: int) -> nn.Module:
        return nn.Conv2d(channels, self.num_bins, 1)

    def config(self) -> dict:
        return {**super().config(), "bin_size": self.bin_size, "vividness": self.vividness}

    @staticmethod
    def temperature(vividness: float) -> float:
        if not 0.0 <= vividness <= 1.0:
            raise ValueError(f"vividness must be in [0, 1], got {vividness}")
        return 1.0 - 0.9 * vividness

    def image(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        """Logits (B, Q, h, w) -> annealed-mean ab (B, 2, 2h, 2w) in [-1, 1]."""
        t = self.temperature(self.vividness if vividness is None else vividness)
        probs = torch.softmax(output.float() / t, dim=1)
        ab = torch.einsum("bqhw,qc->bchw", probs, self.centers)  # (B, 2, h, w)
        return F.interpolate(ab, scale_factor=2, mode="bilinear", align_corners=False)

    def soft_targets(self, ab_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """True ab (B, 2, H, W) in [-1, 1] -> the bins around each half-resolution pixel's colour and their weights.

        Soft encoding (Zhang et al. use a Gaussian over the 5 nearest bins): here the 4 grid
        cells whose centres surround the colour, weighted bilinearly, which costs four
        gathers instead of a distance to every bin. Cells outside the gamut get weight 0.
        Returns class indices (B, 4, h, w) and weights (B, 4, h, w) summing to 1.
        """
        cells = self.grid_to_class.shape[0]
        # Position on the grid of cell centres: centre k sits at -1 + (k + 0.5) * 2 / cells.
        pos = ((F.avg_pool2d(ab_norm.float(), 2) + 1) * cells / 2 - 0.5).clamp(0, cells - 1)  # (B, 2, h, w)
        low = pos.floor().clamp(max=cells - 2)
        frac = pos - low
        low = low.long()
        index, weight = [], []
        for da in (0, 1):
            for db in (0, 1):
                wa = frac[:, 0] if da else 1 - frac[:, 0]
                wb = frac[:, 1] if db else 1 - frac[:, 1]
                cls = self.grid_to_class[low[:, 0] + da, low[:, 1] + db]
                index.append(cls.clamp(min=0))
                weight.append(wa * wb * (cls >= 0))
        index, weight = torch.stack(index, dim=1), torch.stack(weight, dim=1)
        return index, weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-6)

    def auxiliary_loss(self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy against the soft-encoded true colours, each pixel weighted by its colour's rarity."""
        index, soft = self.soft_targets(target)
        ce = -(F.log_softmax(output.float(), dim=1).gather(1, index) * soft).sum(dim=1, keepdim=True)  # (B, 1, h, w)
        if weights is not None:
            ce = ce * F.avg_pool2d(weights, 2)
        return ce.mean()


@register_generator("semantic_bins")
class SemanticBinsGenerator(SemanticUNetGenerator, UNetBinsGenerator):
    """The ``unet_semantic`` network (a frozen ImageNet encoder at the bottleneck) with the
    ``unet_bins`` head: a distribution over a*b* bins at half resolution, decoded by the
    annealed mean whose temperature is the ``vividness`` knob.

    Regression on these photos paints the median of the colours a thing could be (olive
    between green and brown, sepia for the rest); a distribution keeps the modes apart, and
    the encoder is what should make the right mode the likely one.
    Input (B, 1, H, W) L in [-1, 1]; output (B, Q, H/2, W/2) logits.
    """

    def __init__(self, base_channels: int = 32, depth: int = 4, bin_size: int = 10, vividness: float = 0.5) -> None:
        UNetBinsGenerator.__init__(self, base_channels, depth, bin_size, vividness)
        self.add_encoder()


@register_generator("semantic_bins_pair")
class SemanticBinsPairGenerator(UNetPairGenerator):
    """A ``semantic_bins`` network and a plain U-Net whose a*b* are mixed after decoding:
    ``(1 - mix) * first + mix * second``, as :class:`UNetPairGenerator` mixes two regressions.

    The first gives a distribution over colours (the ``vividness`` knob reaches it), the
    second one colour per pixel; their mistakes differ, so the mix is nearer the truth than
    either (the default card's row Z). One output tensor carries both to :meth:`image`:
    the first's logits at half resolution, and beside them the second's full-resolution
    a*b* folded into 8 channels at half resolution (``pixel_unshuffle``: nothing is lost).
    Joined by ``train/combine.py``; the default recipe fine-tunes the pair as a whole (the
    pixel loss on the mix, the class loss on the first's logits).
    Input (B, 1, H, W) L in [-1, 1]; output (B, Q + 8, H/2, W/2).
    """

    BOUNDS = {**UNetPairGenerator.BOUNDS, "depth": (2, 7), "bin_size": (8, 40), "vividness": (0.0, 1.0)}
    FIRST = SemanticBinsGenerator

    def __init__(self, base_channels: int = 32, second_base_channels: int = 48, depth: int = 4, bin_size: int = 10,
                 vividness: float = 0.5, mix: float = 0.65) -> None:
        self.bin_size, self.vividness = bin_size, float(vividness)  # make_first needs them
        super().__init__(base_channels, second_base_channels, depth, mix)

    def make_first(self, base_channels: int, depth: int) -> SemanticBinsGenerator:
        return SemanticBinsGenerator(base_channels, depth, self.bin_size, self.vividness)

    def config(self) -> dict:
        return {**self.first.config(), "second_base_channels": self.second.base_channels, "mix": self.mix}

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        logits = self.first(l_norm)  # (B, Q, H/2, W/2)
        folded = F.pixel_unshuffle(self.second(l_norm), 2)  # (B, 8, H/2, W/2), the second's ab in [-1, 1]
        return torch.cat([logits, folded], dim=1)

    def disagreement(self, l_norm: torch.Tensor) -> torch.Tensor:
        return (self.first.image(self.first(l_norm)) - self.second(l_norm)).norm(dim=1, keepdim=True)  # (B, 1, H, W)

    def image(self, output: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        """(B, Q + 8, h, w) -> the mixed ab (B, 2, 2h, 2w) in [-1, 1]."""
        q = self.first.num_bins
        first = self.first.image(output[:, :q], vividness)
        second = F.pixel_shuffle(output[:, q:].float(), 2)
        return (1.0 - self.mix) * first + self.mix * second

    def auxiliary_loss(self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        return self.first.auxiliary_loss(output[:, : self.first.num_bins], target, weights)


@register_discriminator("patchgan")
class PatchDiscriminator(DiscriminatorNet):
    """PatchGAN discriminator (Isola et al. 2017) with spectral normalisation.

    ``n_layers`` conv4x4 of stride 2, then two of stride 1: with 3 layers each output logit
    judges a 70x70 patch, so the loss looks at local colour realism at any image size.
    Its cost grows with the square of ``base_channels``: at 128x128 the base-64 net costs
    about 1.4 times the default generator's FLOPs per image, base 32 a third of that.
    Input (B, 3, H, W): L and ab, each scaled to [-1, 1]; output (B, 1, h, w) logits.
    """

    LEGACY_KEYS = ("image_size",)
    BOUNDS = {"base_channels": (1, 512), "n_layers": (1, 5)}

    def __init__(self, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.base_channels, self.n_layers = base_channels, n_layers
        sn = nn.utils.spectral_norm
        c = base_channels
        layers: list[nn.Module] = [sn(nn.Conv2d(3, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, n_layers):
            layers += [sn(nn.Conv2d(c * 2 ** (i - 1), c * 2**i, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        top = c * 2 ** (n_layers - 1)
        layers += [sn(nn.Conv2d(top, 2 * top, 4, stride=1, padding=1)), nn.LeakyReLU(0.2, inplace=True),
                   sn(nn.Conv2d(2 * top, 1, 4, stride=1, padding=1))]
        self.net = nn.Sequential(*layers)

    def config(self) -> dict:
        return {"base_channels": self.base_channels, "n_layers": self.n_layers}

    def forward(self, lab_norm: torch.Tensor) -> torch.Tensor:
        return self.net(lab_norm)

    def judge_input(self, gen_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([gen_input, image.to(gen_input.dtype)], dim=1)  # L and ab together: is this chroma right for this L?


# --------------------------------------------------------------------------------------
# The Hub models users load
# --------------------------------------------------------------------------------------


def _options_from_config(registry: dict, config: dict, where: str, aliases: dict | None = None) -> dict:
    config = dict(config)
    architecture = config.pop("architecture", "unet")
    architecture = (aliases or {}).get(architecture, architecture)
    if not isinstance(architecture, str) or architecture not in registry:
        raise ModelLoadError(f"{where}: unknown architecture {architecture!r}: expected one of {', '.join(sorted(registry))}")
    net_class = registry[architecture]
    for key in net_class.LEGACY_KEYS:
        config.pop(key, None)
    check_options(net_class, config, where)
    return {"architecture": architecture, **config}


class ColorGenerator(nn.Module, SafetensorsHubMixin, **HUB_METADATA):
    """Colorization generator: ``architecture=`` picks the network, the other keyword
    arguments are that network's own (see :data:`GENERATORS`).

    ``forward`` speaks the network's own language; :meth:`predict_ab` is the common one
    the pipeline uses: L in, a*b* out, for every architecture.
    """

    def __init__(self, architecture: str = "unet", **options) -> None:
        super().__init__()
        self.net: GeneratorNet = _lookup(GENERATORS, architecture)(**options)
        self.architecture = architecture
        self._hub_mixin_config = {"architecture": architecture, **self.net.config()}

    @classmethod
    def options_from_config(cls, config: dict, where: str) -> dict:
        return _options_from_config(GENERATORS, config, where)

    @property
    def stride(self) -> int:
        return self.net.stride

    @property
    def input_size(self) -> int | None:
        return self.net.input_size

    @property
    def discriminator_architecture(self) -> str:
        return self.net.discriminator

    @property
    def takes_vividness(self) -> bool:
        """Whether ``vividness`` changes this model's colours (see :func:`vividness_architectures`)."""
        return "vividness" in self.net.BOUNDS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def generate_model_card(self, *args, **kwargs):
        """The card ``save_pretrained``/``push_to_hub`` write; ``model_card_kwargs`` go to
        :func:`colorgan_hf.card.make_card` (``evaluations``, ``training``, ``samples``, ...)."""
        from .card import make_card

        return make_card(self._hub_mixin_config, sum(p.numel() for p in self.parameters()), **kwargs)

    def predict_ab(self, l_channel: torch.Tensor, vividness: float | None = None) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> predicted a*b* (B, 2, H, W) in Lab units.

        ``vividness`` in [0, 1] (None: the model's default) sharpens the colour
        distribution of a ``unet_bins`` model before its mean is taken; the regression
        architectures predict one colour per pixel and ignore it.
        """
        return self.net.decode_ab(self(self.net.encode(l_channel)), vividness)

    def disagreement(self, l_channel: torch.Tensor) -> torch.Tensor | None:
        """L (B, 1, H, W) in [0, 100] -> how far apart the member networks' a*b* are, (B, 1, H, W),
        for models made of several (the shipped default); None for a single network."""
        return self.net.disagreement(self.net.encode(l_channel))


class ColorDiscriminator(nn.Module, SafetensorsHubMixin, **HUB_METADATA):
    """Discriminator: ``architecture="patchgan"`` (L+ab patches) or ``"paper"`` (CNN + FC on RGB).

    ``forward`` returns logits (the paper's sigmoid is applied in the loss, or by
    :meth:`probability`).
    """

    def __init__(self, architecture: str = "patchgan", **options) -> None:
        super().__init__()
        architecture = DISCRIMINATOR_ALIASES.get(architecture, architecture)
        self.net: DiscriminatorNet = _lookup(DISCRIMINATORS, architecture)(**options)
        self.architecture = architecture
        self._hub_mixin_config = {"architecture": architecture, **self.net.config()}

    @classmethod
    def options_from_config(cls, config: dict, where: str) -> dict:
        return _options_from_config(DISCRIMINATORS, config, where, DISCRIMINATOR_ALIASES)

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


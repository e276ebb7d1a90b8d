#!/usr/bin/env python
"""Convert a Keras MobileNetV2 saved for TensorFlow.js into the ``unet_semantic`` encoder.

    python train/import_encoder.py MODEL_JSON --output runs/encoder/mobilenet_v2.safetensors [--check PHOTO_DIR]

MODEL_JSON is a TensorFlow.js layers model (``model.json`` beside its weight shards, named
as its ``weightsManifest`` says) of Keras's ``MobileNetV2(alpha=1.0)``; 8-bit quantized
weights are dequantized (``min + scale * q``). The one we use is the MobileNetV2 that
the npm package ``nsfwjs`` 4.3.0 (MIT licence) ships inside itself: Keras's ImageNet
weights, frozen up to block 10, with blocks 11-16 fine-tuned by its authors for their
classifier. The package keeps its files as JavaScript modules; these lines write them out
in the standard form:

    npm pack nsfwjs@4.3.0 && tar xzf nsfwjs-4.3.0.tgz
    (cd package/dist/models/mobilenet_v2 && node -e 'const fs = require("fs");
      fs.writeFileSync("model.json", JSON.stringify(require("./model.min.js")));
      fs.writeFileSync("group1-shard1of1", Buffer.from(require("./group1-shard1of1.min.js"), "base64"))')
    python train/import_encoder.py package/dist/models/mobilenet_v2/model.json --output runs/encoder/mobilenet_v2.safetensors

The stem's RGB kernel is summed over its colour channels (the network on a gray image);
``--rgb`` keeps it, for the perceptual loss of ``train/train.py --perceptual_encoder``.
``--check DIR`` runs the converted network with the package's own classifier head on the
photos of DIR and prints the share of each class, a check that the conversion is right
(everyday photos should come out "Neutral"). Only the encoder is written, with
``safetensors``, to a temporary name and renamed (``colorgan_hf.files.atomic_path``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from colorgan_hf.encoders import MobileNetV2Features
from colorgan_hf.errors import ColorGANError
from colorgan_hf.files import atomic_path

logger = logging.getLogger("colorgan_hf.import_encoder")
CHECK_CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")  # nsfwjs's head, for --check only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_json", type=Path, help="The TensorFlow.js model.json of a Keras MobileNetV2 (weight shards beside it).")
    parser.add_argument("--output", type=Path, required=True, help="The safetensors file to write the encoder's weights to.")
    parser.add_argument("--check", type=Path, default=None,
                        help="A folder of photos to classify with the model's own head after converting (prints class shares).")
    parser.add_argument("--check_limit", type=int, default=64, help="How many photos of --check to classify.")
    parser.add_argument("--rgb", action="store_true",
                        help="Keep the RGB stem (an encoder of colour images, for train.py's --perceptual_encoder) instead of "
                             "summing it over the colour channels (the gray encoder of unet_semantic).")
    return parser.parse_args(argv)


def read_tfjs_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Every weight of a TensorFlow.js model, by Keras name, dequantized to float32."""
    try:
        manifest = json.loads(model_json.read_text())["weightsManifest"]
    except (OSError, ValueError, KeyError) as error:
        raise ColorGANError(f"{model_json}: not a TensorFlow.js model.json ({error})") from None
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"], dtype=np.int64))
            quant = spec.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
            raw = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += count * dtype.itemsize
            values = raw.astype(np.float32) * quant["scale"] + quant["min"] if quant else raw.astype(np.float32)
            weights[spec["name"]] = values.reshape(spec["shape"])
        if offset != len(data):
            raise ColorGANError(f"{model_json}: the shards of a weight group hold {len(data)} bytes, the manifest names {offset}")
    return weights


def _keras_names(block: int) -> dict[str, str]:
    """Our module prefix -> Keras layer name, for one block of the trunk."""
    if block == 0:
        return {"depthwise": "expanded_conv_depthwise", "project": "expanded_conv_project"}
    return {part: f"block_{block}_{part}" for part in ("expand", "depthwise", "project")}


def convert(weights: dict[str, np.ndarray], rgb: bool = False) -> MobileNetV2Features:
    """Keras MobileNetV2 weights -> a :class:`MobileNetV2Features` holding them (of gray input unless ``rgb``)."""
    state: dict[str, torch.Tensor] = {}

    def weight(name: str) -> np.ndarray:
        if name not in weights:
            raise ColorGANError(f"the checkpoint has no weight {name!r}: not a Keras MobileNetV2 (alpha 1.0)")
        return weights[name]

    def conv_bn(ours: str, conv: str, bn: str, depthwise: bool = False) -> None:
        kernel = weight(f"{conv}/depthwise_kernel" if depthwise else f"{conv}/kernel")  # (kh, kw, in, out) or (kh, kw, c, 1)
        kernel = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
        state[f"{ours}.0.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        for keras, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var")):
            state[f"{ours}.1.{torch_name}"] = torch.from_numpy(weight(f"{bn}/{keras}").copy())

    conv_bn("stem", "Conv1", "bn_Conv1")
    if not rgb:
        state["stem.0.weight"] = state["stem.0.weight"].sum(dim=1, keepdim=True)  # RGB stem on R = G = B
    net = MobileNetV2Features(in_channels=3 if rgb else 1)
    for k, block in enumerate(net.blocks):
        for part, keras in _keras_names(k).items():
            if part == "expand" and block.expand is None:
                continue
            conv_bn(f"blocks.{k}.{part}", keras, f"{keras}_BN", depthwise=part == "depthwise")
    conv_bn("top", "Conv_1", "Conv_1_bn")
    try:
        missing = net.load_state_dict(state, strict=False).missing_keys
    except RuntimeError as error:  # a shape that is not MobileNetV2's
        raise ColorGANError(f"the checkpoint does not fit MobileNetV2: {error}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        raise ColorGANError(f"the checkpoint lacks {len(missing)} tensors of MobileNetV2, e.g. {missing[:3]}")
    return net


def check(net: MobileNetV2Features, weights: dict[str, np.ndarray], folder: Path, limit: int) -> dict[str, float]:
    """Class shares of the package's own head (average pool, dense 256, 128, 5) on ``limit`` photos of ``folder``."""
    from PIL import Image

    from colorgan_hf.data import list_images

    rgb = net.stem[0].in_channels == 3

    paths = list_images(folder)[0][:limit]
    if not paths:
        raise ColorGANError(f"{folder}: no photos to check with")
    dense = [(torch.from_numpy(weights[f"dense_{i}/kernel"]), torch.from_numpy(weights[f"dense_{i}/bias"])) for i in (1, 2, 3)]
    counts = torch.zeros(len(CHECK_CLASSES))
    with torch.no_grad():
        for path in paths:
            with Image.open(path) as image:
                picture = image.convert("RGB" if rgb else "L").resize((224, 224), Image.BILINEAR)
            pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
            x = pixels.permute(2, 0, 1)[None] if rgb else pixels[None, None]  # (1, C, 224, 224)
            x = net(x)[1].mean(dim=(2, 3))  # (1, 1280): the 7x7 average pool of the head
            x = F.relu(x @ dense[0][0] + dense[0][1])
            x = F.relu(x @ dense[1][0] + dense[1][1])
            counts[int((x @ dense[2][0] + dense[2][1]).argmax())] += 1
    return {name: float(c) / len(paths) for name, c in zip(CHECK_CLASSES, counts)}


def main(args: argparse.Namespace) -> None:
    weights = read_tfjs_weights(args.model_json)
    net = convert(weights, rgb=args.rgb).eval()
    if args.check:
        shares = check(net, weights, args.check, args.check_limit)
        logger.info("class shares of the package's head on %s: %s", args.check, ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    with atomic_path(args.output) as tmp:
        save_file(state, str(tmp), metadata={"source": str(args.model_json)})
    logger.info(f"wrote the MobileNetV2 encoder ({sum(v.numel() for v in state.values()):,} values) to {args.output}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        main(parse_args())
    except ColorGANError as error:
        logger.error(str(error))
        sys.exit(1)

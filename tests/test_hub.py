import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

from colorgan_hf import ColorDiscriminator, ColorGenerator
from colorgan_hf.evaluation import evaluate_models

from hub_server import HubServer

HERE = Path(__file__).parent


def make_run(tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(run / "generator")
    ColorDiscriminator(architecture="unet", base_channels=8).save_pretrained(run / "discriminator")
    (run / "samples").mkdir()
    Image.new("RGB", (48, 16), "teal").save(run / "samples" / "step-0000010.png")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted(HERE.glob("data/*.jpg"))[:2]:
        Image.open(path).save(photos / path.name)
    result = evaluate_models([str(run / "generator")], str(photos), size=64, progress=False)
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(result))
    return run, evaluation


def test_push_to_a_local_hub_and_load_back(tmp_path):
    run, evaluation = make_run(tmp_path)
    with HubServer() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_dummy_token_for_tests", "HF_HUB_OFFLINE": "0",
               "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "PYTHONPATH": str(HERE.parent)}
        proc = subprocess.run([sys.executable, str(HERE / "push_client.py"), str(run), str(evaluation)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:] + "\n" + "\n".join(hub.state.requests)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        files = hub.state.repos["tester/colorgan-tiny"]
        commits = hub.state.commits["tester/colorgan-tiny"]
    assert result["same_outputs"] and result["same_outputs_mixin"]
    assert result["architecture"] == "unet"
    assert len(commits) == 1, "everything goes up in one commit"
    assert {"config.json", "model.safetensors", "README.md", "discriminator/config.json", "samples/step-0000010.png"} <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    card = files["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    row = json.loads(evaluation.read_text())["rows"][str(run / "generator")]
    assert abs(metrics["psnr"] - row["psnr"]) < 1e-4
    assert "samples/step-0000010.png" in card

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


# ------------------------------------------------------------------ no network: a clear error, at once (issue 14, item 6)

LOAD_SCRIPT = r"""
import json, sys, time
from colorgan_hf import ColorGenerator
start = time.perf_counter()
try:
    ColorGenerator.from_pretrained(sys.argv[1])
    outcome = "loaded"
except Exception as error:
    outcome = f"{type(error).__name__}: {error}"
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start}))
"""


def load_in_subprocess(repo_id: str, tmp_path: Path, **env) -> dict:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
           "PYTHONPATH": str(HERE.parent), **env}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, repo_id], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_offline_message(result: dict, reason: str) -> None:
    outcome = result["outcome"]
    assert outcome.startswith("ModelLoadError: colorgan-hf/colorgan-default: the Hugging Face Hub could not be reached"), outcome
    assert reason in outcome, outcome
    assert "to work offline" in outcome and "save_pretrained" in outcome and "no config.json in the repository" not in outcome
    # Review s4, 10: it named only "default, paper"; every shipped model, from the registry's own list.
    from colorgan_hf.registry import shipped_models

    assert f"the shipped models by name: {', '.join(shipped_models())})" in outcome and len(shipped_models()) == 4, outcome
    # It used to retry for about 23 s (minutes for a timeout) and then say "no config.json in the repository".
    assert result["seconds"] < 8, result


def test_offline_mode_says_the_hub_could_not_be_reached(tmp_path):
    assert_offline_message(load_in_subprocess("colorgan-hf/colorgan-default", tmp_path, HF_HUB_OFFLINE="1"), "HF_HUB_OFFLINE=1")


def test_unreachable_hub_says_so_at_once(tmp_path):
    result = load_in_subprocess("colorgan-hf/colorgan-default", tmp_path, HF_HUB_OFFLINE="0",
                                HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    assert_offline_message(result, "Connection refused")


def test_a_hub_that_never_answers_times_out_with_the_same_message(tmp_path):
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        result = load_in_subprocess("colorgan-hf/colorgan-default", tmp_path, HF_HUB_OFFLINE="0",
                                    HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}", HF_HUB_ETAG_TIMEOUT="1",
                                    HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert_offline_message(result, "Timeout")


def test_a_model_downloaded_once_loads_from_the_cache_when_the_hub_is_unreachable(tmp_path):
    model_dir = tmp_path / "model"
    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(model_dir)
    with HubServer() as hub:
        hub.state.repos["tester/cached"] = {p.name: p.read_bytes() for p in model_dir.iterdir()}
        hub.state.commits["tester/cached"] = [{"oid": "a" * 40, "files": sorted(hub.state.repos["tester/cached"])}]
        first = load_in_subprocess("tester/cached", tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url)
    assert first["outcome"] == "loaded", first
    again = load_in_subprocess("tester/cached", tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    assert again["outcome"] == "loaded" and again["seconds"] < 8, again
    offline = load_in_subprocess("tester/cached", tmp_path, HF_HUB_OFFLINE="1")
    assert offline["outcome"] == "loaded", offline

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


# ------------------------------------------------------------------ review s4 (training): paths, push errors, rows, samples

import pytest  # noqa: E402

from colorgan_hf.errors import HubError, ModelLoadError  # noqa: E402


@pytest.mark.parametrize("spelling", ["absolute", "deep", "dot", "not-an-id"])
def test_a_folder_that_does_not_exist_is_no_such_folder_not_a_bad_hub_id(tmp_path, spelling):
    """Review s4 (training), 1: an absolute or deeper path that does not exist ended in huggingface_hub's
    HFValidationError ("Repo id must be in the form ...")."""
    model = {"absolute": str(tmp_path / "nosuchfolder"), "deep": "runs/b7/nosuch", "dot": "./nosuch",
             "not-an-id": "my run!"}[spelling]
    with pytest.raises(ModelLoadError) as caught:
        ColorGenerator.from_pretrained(model)
    message = str(caught.value)
    assert message.startswith(f"{model}: no such folder"), message
    assert "Repo id must be in the form" not in message and "could not be reached" not in message, message


def test_a_mistyped_relative_folder_says_no_such_folder(tmp_path, monkeypatch):
    """Review s4 (training), 1: `--init_generator runs/nosuch` (runs/ exists) said only that the Hub could not be reached."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        ColorGenerator.from_pretrained("runs/nosuch")
    assert str(caught.value).startswith("runs/nosuch: no such folder (runs/ holds no nosuch); as a Hub id: "), str(caught.value)


def run_push(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """`colorgan push ARGS` in a subprocess (HF_ENDPOINT must be set before huggingface_hub loads)."""
    env = {**{k: v for k, v in os.environ.items() if k != "HF_TOKEN"}, "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "PYTHONPATH": str(HERE.parent), **env}
    return subprocess.run([sys.executable, "-m", "colorgan_hf.cli", "push", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("colorgan: error: "), proc.stderr[-3000:]
    return errors[0]


class RefusingHub:
    """A Hub that answers every request with 401, as huggingface.co does without a valid token."""

    def __enter__(self) -> "RefusingHub":
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def refuse(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                body = b'{"error": "Invalid credentials in Authorization header"}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = refuse

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_push_without_the_hub_is_one_line_and_pushes_nothing(tmp_path):
    """Review s4 (training), 3: `colorgan push` offline or without network ended in a 25-line traceback
    (OfflineModeIsEnabled, ConnectError); a refused login should name `hf auth login`."""
    run = tmp_path / "run"
    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(run / "generator")
    args = ["--model", str(run), "--repo-id", "tester/x"]
    offline = one_error_line(run_push(args, tmp_path, HF_HUB_OFFLINE="1"))
    assert offline == ("colorgan: error: tester/x: cannot reach the Hugging Face Hub (offline: HF_HUB_OFFLINE=1 is set): "
                       "nothing was pushed"), offline
    no_route = one_error_line(run_push(args, tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"))
    assert no_route.startswith("colorgan: error: tester/x: cannot reach the Hugging Face Hub (network error: ")
    assert no_route.endswith("): nothing was pushed"), no_route
    with RefusingHub() as hub:
        refused = one_error_line(run_push(args, tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url, HF_TOKEN="hf_expired"))
    assert "401" in refused and "`hf auth login`" in refused and refused.endswith("nothing was pushed"), refused


def test_push_to_hub_of_a_model_offline_is_a_hub_error(tiny_unet):
    """Review s4 (training), 3: train.py --push_to_hub ended in the same traceback; the mixin's push says it in one line."""
    with pytest.raises(HubError, match=r"^tester/x: cannot reach the Hugging Face Hub \(offline: HF_HUB_OFFLINE=1 is set\): "
                                       r"nothing was pushed$"):
        tiny_unet.push_to_hub("tester/x")


def two_row_evaluation(tmp_path: Path, first: str, second: str) -> Path:
    """A shipped card's evaluation (rows gray, default, paper) with its model rows renamed ``first`` and ``second``."""
    result = json.loads((HERE.parent / "docs" / "cards" / "eval_bsds500_test.json").read_text())
    rows = result["rows"]
    result["rows"] = {"gray": rows["gray"], first: rows["default"], second: rows["paper"]}
    path = tmp_path / "two_rows.json"
    path.write_text(json.dumps(result))
    return path


def test_push_takes_the_pushed_models_row_and_refuses_a_table_without_it(tmp_path, monkeypatch):
    """Review s4 (training), 4: with two rows in the eval JSON, push put the first row's numbers in the card,
    whichever model it pushed."""
    for name in ("def", "int"):
        ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(tmp_path / "runs" / name / "generator")
    (tmp_path / "runs" / "int" / "history.json").write_text(json.dumps([{"step": 8, "epoch": 0, "epoch_steps": 8}]))
    monkeypatch.chdir(tmp_path)  # the table names the models as `colorgan evaluate --model runs/def/generator` did
    evaluation = two_row_evaluation(tmp_path, "runs/def/generator", "runs/int/generator")
    rows = json.loads(evaluation.read_text())["rows"]
    with HubServer() as hub:
        env = dict(HF_ENDPOINT=hub.url, HF_TOKEN="hf_dummy_token_for_tests", HF_HUB_OFFLINE="0")
        pushed = run_push(["--model", str(tmp_path / "runs" / "int"), "--repo-id", "tester/int", "--eval-json", str(evaluation)],
                          tmp_path, **env)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        card = hub.state.repos["tester/int"]["README.md"].decode()
        other = tmp_path / "other"
        ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(other)
        refused = run_push(["--model", str(other), "--repo-id", "tester/other", "--eval-json", str(evaluation)], tmp_path, **env)
        repos = set(hub.state.repos)
    metrics = {m["type"]: m["value"] for m in yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]["metrics"]}
    assert metrics["psnr"] == round(rows["runs/int/generator"]["psnr"], 5) != round(rows["runs/def/generator"]["psnr"], 5)
    assert repos == {"tester/int"}, "nothing of the refused push went up"
    # Review s4 (training), 15: the Training section says what the run's history holds, without a local path.
    assert "## Training\n\nNot described (no training notes were given). The run's history.json logs 8 steps over 1 epoch.\n" in card
    message = one_error_line(refused)
    assert "2 model rows (runs/def/generator, runs/int/generator) and none is the model" in message, message


def test_push_leaves_out_sample_grids_of_an_earlier_run(tmp_path):
    """Review s4 (training), 5: after --overwrite_output_dir, samples/ still held the earlier run's later grids and push
    uploaded them: the grids after the run's last logged step are not this generator's."""
    from colorgan_hf.push import resolve_run

    run = tmp_path / "run"
    ColorGenerator(architecture="unet", base_channels=8, depth=3).save_pretrained(run / "generator")
    (run / "samples").mkdir()
    for step in (2, 3, 6, 10):
        Image.new("RGB", (48, 16), "teal").save(run / "samples" / f"step-{step:07d}.png")
    _, _, without_history = resolve_run(run)
    assert [p.name for p in without_history] == [f"step-{s:07d}.png" for s in (2, 3, 6, 10)], "no history: every grid, as before"
    history = [{"step": 1, "g_pixel": 0.3, "epoch": 0}, {"step": 2, "test_pixel": 0.2},
               {"step": 2, "epoch": 0, "epoch_steps": 2, "epoch_g_pixel": 0.3}]
    (run / "history.json").write_text(json.dumps(history))
    _, _, samples = resolve_run(run)
    assert [p.name for p in samples] == ["step-0000002.png"]

"""`colorgan space-export DIR`: a self-contained Space (issue 14.1)."""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from colorgan_hf.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("export") / "my-space"
    assert main(["space-export", str(target)]) == 0
    return target


def test_export_holds_app_package_weights_front_matter_and_pinned_pypi_requirements(exported):
    assert (exported / "app.py").read_text() == (ROOT / "space" / "app.py").read_text()
    assert (exported / "colorgan_hf" / "weights" / "default" / "model.safetensors").is_file()
    assert (exported / "colorgan_hf" / "__init__.py").is_file()
    assert not list(exported.rglob("__pycache__")) and not list(exported.rglob("*.pyi"))
    assert sorted(p.name for p in (exported / "examples").iterdir()) == sorted(p.name for p in (ROOT / "space" / "examples").iterdir())
    readme = (exported / "README.md").read_text()
    import gradio

    assert readme.startswith("---\n") and "app_file: app.py" in readme and f"sdk_version: {gradio.__version__}" in readme
    lines = [line for line in (exported / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    assert not [line for line in lines if "colorgan" in line.lower()], "the package is vendored, not required"
    assert {line.split("==")[0] for line in lines} >= {"torch", "gradio", "huggingface_hub", "safetensors", "pillow", "kornia"}


def test_export_refuses_a_non_empty_folder_without_overwrite(tmp_path, caplog):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["space-export", str(tmp_path)]) == 1
    assert "--overwrite" in caplog.text and (tmp_path / "keep.txt").exists()


def test_exported_app_imports_the_vendored_package(exported):
    result = subprocess.run([sys.executable, "-c", "import colorgan_hf, sys; print(colorgan_hf.__file__)"],
                            cwd=exported, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().is_relative_to(exported.resolve())


@pytest.mark.skipif(not os.environ.get("COLORGAN_SLOW_TESTS"),
                    reason="slow (a fresh venv and a full install, several minutes): set COLORGAN_SLOW_TESTS=1")
def test_exported_space_installs_in_a_fresh_venv_and_answers(tmp_path, photo_paths):
    """The deploy as a Space does it: a fresh venv (no system packages), `pip install -r requirements.txt`,
    `python app.py` from inside the folder, far from the repository; then a real colorization through the API."""
    from gradio_client import Client, handle_file

    space = tmp_path / "space"
    assert main(["space-export", str(space)]) == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=space, env=env,
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import colorgan_hf; print(colorgan_hf.__file__)"], cwd=space, env=env,
                           capture_output=True, text=True, timeout=300)
    assert Path(where.stdout.strip()).resolve().is_relative_to(space.resolve()), where.stdout + where.stderr
    with socket_port() as port:
        pass
    log = tmp_path / "app.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([str(python), "app.py", "--port", str(port)], cwd=space, stdout=handle, stderr=subprocess.STDOUT,
                                env={**env, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.time() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        _, download, info = Client(url, verbose=False).predict(handle_file(str(photo_paths[0])), 128, 1.0, "default (ours)",
                                                               api_name="/colorize")
        assert Image.open(download).size == Image.open(photo_paths[0]).size and "Colorized" in info
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class socket_port:
    """A free port on 127.0.0.1."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()

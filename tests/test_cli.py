import shutil
import subprocess
import sys

from PIL import Image

from colorgan_hf.cli import main


def test_cli_colorizes_a_folder_and_names_the_corrupt_file(tmp_path, photo_paths, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(photo_paths[0], src / "a.jpg")
    shutil.copy(photo_paths[1], src / "sub" / "b.jpg")
    Image.open(photo_paths[2]).convert("L").save(src / "c.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"

    code = main(["-q", "colorize", str(src), "-o", str(out), "--size", "128"])

    assert code != 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err
    assert sum("error" in line for line in err.splitlines()) == 1, err
    assert (out / "a_color.jpg").is_file()
    assert (out / "sub" / "b_color.jpg").is_file()
    assert (out / "c_color.png").is_file()
    assert not (out / "broken_color.jpg").exists()
    assert Image.open(out / "sub" / "b_color.jpg").size == Image.open(photo_paths[1]).size
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before, "inputs must never change"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "no temporary files left behind"


def test_cli_never_overwrites_inputs(tmp_path, photo_paths):
    src = tmp_path / "a_color.jpg"
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    shutil.copy(photo_paths[1], src)
    original = src.read_bytes()
    # Writing into the input folder: a.jpg -> a_color.jpg, which is itself an input.
    code = main(["-q", "colorize", str(tmp_path / "a.jpg"), str(src), "-o", str(tmp_path)])
    assert code != 0
    assert src.read_bytes() == original


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "colorgan_hf.cli", "colorize", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--saturation" in result.stdout and "--size" in result.stdout

"""Packaging: `python -m build` makes an sdist and a wheel holding the package's code only; the
wheel installs into a fresh virtual environment (torch and torch-harmonics reused from this one,
nothing downloaded) where `geo-neuralop --help`, `--version` and the README tour run."""

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from geo_neuralop._version import __version__
from geo_neuralop.cli import main

REPO = Path(__file__).resolve().parents[1]


def build(kind: str, out: Path) -> Path:
    pytest.importorskip("build")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", f"--{kind}",
                           "--outdir", str(out), str(REPO)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (found,) = out.glob("*.whl" if kind == "wheel" else "*.tar.gz")
    return found


def test_version_option_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"geo-neuralop {__version__}"


def test_wheel_holds_the_package_code_only(tmp_path):
    wheel = build("wheel", tmp_path)
    assert wheel.name == f"geo_neuralop-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"geo_neuralop", f"geo_neuralop-{__version__}.dist-info"}
    code = [n for n in names if n.startswith("geo_neuralop/")]
    assert code and all(n.endswith(".py") for n in code), [n for n in code
                                                           if not n.endswith(".py")]
    assert "geo_neuralop/data/importers/xarray_io.py" in names
    metadata = zipfile.ZipFile(wheel).read(f"geo_neuralop-{__version__}.dist-info/METADATA")
    text = metadata.decode()
    assert f"Version: {__version__}" in text
    for extra in ("formats", "well", "docs", "dev"):
        assert f"Provides-Extra: {extra}" in text
    entry = zipfile.ZipFile(wheel).read(f"geo_neuralop-{__version__}.dist-info/"
                                        f"entry_points.txt").decode()
    assert "geo-neuralop = geo_neuralop.cli:main" in entry


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_the_readme_tour(tmp_path):
    wheel = build("wheel", tmp_path / "dist")
    sdist = build("sdist", tmp_path / "dist")
    assert sdist.name == f"geo_neuralop-{__version__}.tar.gz"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # torch, torch-harmonics and the other dependencies come from this environment
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = venv / "bin" / "geo-neuralop"
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    help_text = subprocess.run([str(cli), "--help"], capture_output=True, text=True, env=env,
                               cwd=tmp_path, timeout=300)
    assert help_text.returncode == 0
    for command in ("generate", "train", "evaluate", "render", "import", "predict", "export"):
        assert command in help_text.stdout
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
    assert version.stdout.strip() == f"geo-neuralop {__version__}"
    where = subprocess.run([str(python), "-c", "import geo_neuralop; print(geo_neuralop."
                            "__file__)"], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=300).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not the checkout
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    (tmp_path / "tour.py").write_text("\n\n".join(blocks))
    tour = subprocess.run([str(python), "tour.py"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert tour.returncode == 0, tour.stderr[-3000:]

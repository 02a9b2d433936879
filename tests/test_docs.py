"""The documentation site builds with warnings as errors: quickly without running the gallery
(default suite), and with every example executed and its pictures in the pages (slow)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sphinx(out: Path, *options: str, timeout: int) -> subprocess.CompletedProcess:
    for module in ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser"):
        pytest.importorskip(module)
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         "-d", str(out / "doctrees"), *options, str(REPO / "docs"), str(out / "html")],
        capture_output=True, text=True, cwd=REPO, timeout=timeout,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(out),
             "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})


def test_docs_build_without_warnings(tmp_path):
    proc = sphinx(tmp_path, "-D", "plot_gallery=0", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    html = tmp_path / "html"
    for page in ("index", "installation", "quickstart", "concepts", "formats/importing",
                 "formats/predicting", "formats/dataset_files", "design/training",
                 "auto_examples/index", "auto_examples/cylinder",
                 "auto_examples/xarray_import"):
        assert (html / f"{page}.html").exists(), page
    api = (html / "api" / "generated" / "geo_neuralop.data.html").read_text()
    assert "from_xarray" in api and "Parameters" in api  # numpydoc sections rendered
    assert "mathjax/tex-chtml.js" in (html / "concepts.html").read_text()  # served offline
    concepts = (html / "concepts.html").read_text()
    assert "DISCO" in concepts and "fejer-first" in concepts


@pytest.mark.slow
def test_docs_build_runs_the_gallery(tmp_path):
    proc = sphinx(tmp_path, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    images = REPO / "docs" / "auto_examples" / "images"
    for example in ("cylinder", "shallow_water", "xarray_import", "visualization"):
        assert list(images.glob(f"sphx_glr_{example}_*.png")) or example == "visualization", \
            example
        assert (tmp_path / "html" / "auto_examples" / f"{example}.html").exists()

"""Rendering tests. Every render runs in a subprocess: a missing OpenGL library crashes VTK."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from geo_neuralop.viz import rendering_available

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def can_render():
    ok, reason = rendering_available()
    if not ok:
        pytest.skip(f"off-screen rendering is not available here: {reason}")


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=ROOT)
    assert result.returncode == 0, f"subprocess failed ({result.returncode}):\n{result.stderr}"
    return result


MESH_SCRIPT = """
import numpy as np, torch, warnings
from geo_neuralop.geometry import perforated_rectangle_mesh
from geo_neuralop.viz import render_mesh_comparison
mesh = perforated_rectangle_mesh(0.03)
x, y = mesh.pos.double().T.numpy()
truth = np.sin(6 * x) * np.cos(9 * y)
prediction = {prediction}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    render_mesh_comparison(mesh, truth, prediction, {path!r}, field="u", width=900)
print("WARNINGS:", [str(w.message) for w in caught])
"""


def _panels(path, count=3, axis=0):
    img = np.asarray(Image.open(path).convert("RGB")).astype(float)
    return img, np.array_split(img, count, axis=axis)


def test_mesh_comparison_picture(can_render, tmp_path):
    differ, same = tmp_path / "differ.png", tmp_path / "same.png"
    run_python(MESH_SCRIPT.format(prediction="truth + 0.3 * np.cos(20 * x)", path=str(differ)))
    run_python(MESH_SCRIPT.format(prediction="truth.copy()", path=str(same)))
    img, (p_truth, p_pred, p_err) = _panels(differ)  # the channel is wide: stacked panels
    assert img.shape[1] == 900 and img.shape[0] > 3 * 150
    assert img.std() > 20  # not blank
    colours = np.unique(img.reshape(-1, 3).astype(int) // 8, axis=0)
    assert len(colours) > 100  # a colour map, not a few flat colours
    assert np.abs(p_truth - p_pred).mean() > 3  # different fields look different
    _, (s_truth, s_pred, s_err) = _panels(same)
    assert np.abs(s_truth - s_pred).mean() < 1.5  # equal fields look alike (titles differ)
    assert np.abs(p_err - s_err).mean() > 3  # the error panel shows the error


def test_sphere_comparison_picture_and_nan_warning(can_render, tmp_path):
    path = tmp_path / "globe.png"
    out = run_python(f"""
        import numpy as np, warnings
        from geo_neuralop.geometry import sphere_grid
        from geo_neuralop.viz import render_sphere_comparison
        grid = sphere_grid(32, 64, "equiangular")
        x, y, z = grid.pos.double().T.numpy()
        truth = np.exp(x) * np.sin(2 * y) + z
        prediction = truth + 0.4 * z ** 2
        prediction[:200] = np.nan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            render_sphere_comparison(grid, truth, prediction, {str(path)!r}, field="h",
                                     panel_size=300)
        print("WARNINGS:", [str(w.message) for w in caught])
    """)
    assert "200 NaN value(s)" in out.stdout
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape == (600, 900, 3)  # two views x three panels of 300 px
    assert img.std() > 20
    magenta = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] > 200)
    assert magenta.sum() > 50  # the NaN cap near the north pole is drawn in magenta


def test_rollout_animations(can_render, tmp_path):
    gif, mp4 = tmp_path / "roll.gif", tmp_path / "roll.mp4"
    try:
        import imageio_ffmpeg  # noqa: F401

        with_mp4 = True
    except ImportError:
        with_mp4 = False
    run_python(f"""
        import numpy as np
        from geo_neuralop.geometry import perforated_rectangle_mesh
        from geo_neuralop.viz import animate_rollout
        mesh = perforated_rectangle_mesh(0.04)
        x, y = mesh.pos.double().T.numpy()
        t = np.arange(5)[:, None]
        truth = np.sin(6 * (x - 0.2 * t)) * np.cos(9 * y)
        animate_rollout(mesh, truth, truth * 0.9, {str(gif)!r}, field="u", times=0.1 * t[:, 0])
        if {with_mp4}:
            animate_rollout(mesh, truth, truth * 0.9, {str(mp4)!r}, field="u")
    """)
    frames = Image.open(gif)
    assert frames.n_frames == 5
    first = np.asarray(frames.convert("RGB")).astype(float)
    frames.seek(4)
    last = np.asarray(frames.convert("RGB")).astype(float)
    assert np.abs(first - last).mean() > 1  # the field moves
    if with_mp4:
        assert mp4.stat().st_size > 1000


def test_render_cli_end_to_end(can_render, tmp_path):
    run_python(f"""
        import numpy as np
        from geo_neuralop.data import save_predictions
        from geo_neuralop.geometry import fibonacci_sphere
        cloud = fibonacci_sphere(800)
        z = cloud.pos.double()[:, 2].numpy()
        truth = np.stack([np.stack([np.cos(3 * z + 0.1 * k), z]) .T for k in range(3)])
        save_predictions({str(tmp_path / 'swe.h5')!r}, cloud, truth, truth * 1.1, ["h", "w"],
                         times=[0.0, 1.0, 2.0])
    """)
    result = subprocess.run(
        [sys.executable, "-m", "geo_neuralop.cli", "render", str(tmp_path / "swe.h5"),
         "--field", "h", "--frame", "1", "--map", "--vtu", "--animate", "gif"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    for name in ("swe_h_frame0001.png", "swe_h_map0001.png", "swe_h.gif",
                 "swe_vtu/swe.pvd", "swe_vtu/swe_0002.vtu"):
        assert (tmp_path / name).exists(), (name, result.stdout)
    assert result.stdout.count("wrote ") == 4
    bad = subprocess.run([sys.executable, "-m", "geo_neuralop.cli", "render",
                          str(tmp_path / "swe.h5"), "--field", "vorticity"],
                         capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert bad.returncode == 2 and "unknown field 'vorticity'" in bad.stderr


def test_bad_input_is_rejected_before_rendering(tmp_path):
    """Validation happens before VTK is touched, so these run in-process."""
    from geo_neuralop.geometry import perforated_rectangle_mesh, sphere_grid
    from geo_neuralop.viz import animate_rollout, render_mesh_comparison, render_sphere_comparison

    mesh = perforated_rectangle_mesh(0.06)
    n = mesh.num_nodes
    with pytest.raises(ValueError, match=f"field 'u \\(prediction\\)' has {n - 1} values but the "
                                         f"cloud has {n} points"):
        render_mesh_comparison(mesh, np.zeros(n), np.zeros(n - 1), tmp_path / "a.png", field="u")
    with pytest.raises(ValueError, match="must have shape \\[N\\] \\(one component\\)"):
        render_mesh_comparison(mesh, np.zeros((n, 2)), np.zeros((n, 2)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="layout must be"):
        render_mesh_comparison(mesh, np.zeros(n), np.zeros(n), tmp_path / "a.png", layout="grid")
    with pytest.raises(ValueError, match="needs a sphere cloud"):
        render_sphere_comparison(mesh, np.zeros(n), np.zeros(n), tmp_path / "a.png")
    grid = sphere_grid(8, 16)
    with pytest.raises(ValueError, match="views must hold at least one"):
        render_sphere_comparison(grid, np.zeros(128), np.zeros(128), tmp_path / "a.png", views=[])
    with pytest.raises(ValueError, match="must end in .gif or .mp4"):
        animate_rollout(mesh, np.zeros((2, n)), np.zeros((2, n)), tmp_path / "a.avi")
    with pytest.raises(ValueError, match=f"must have shape \\[T, {n}\\]"):
        animate_rollout(mesh, np.zeros((2, n)), np.zeros(n), tmp_path / "a.gif")
    assert not any(tmp_path.iterdir())


def _escape_predictions(path):
    """A prediction file whose field name tries to climb out of the output folder."""
    from geo_neuralop.data import save_predictions
    from geo_neuralop.geometry import fibonacci_sphere

    cloud = fibonacci_sphere(400)
    z = cloud.pos.double()[:, 2].numpy()
    truth = np.stack([np.cos(3 * z + 0.1 * k)[:, None] for k in range(3)])
    save_predictions(path, cloud, truth, truth * 1.1, ["../../escape"], times=[0.0, 1.0, 2.0])


def _files_outside(root, allowed):
    return sorted(str(p) for p in root.rglob("*")
                  if p.is_file() and not any(p == a or a in p.parents for a in allowed))


def test_field_names_cannot_escape_the_output_folder(can_render, tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    source = deep / "p.h5"
    _escape_predictions(source)
    out = deep / "out"
    result = subprocess.run(
        [sys.executable, "-m", "geo_neuralop.cli", "render", str(source), "--field",
         "../../escape", "--frame", "1", "--output-dir", str(out), "--map", "--animate", "gif",
         "--vtu", "--xdmf"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    assert _files_outside(tmp_path, [source, out]) == []
    for name in ("p__escape_frame0001.png", "p__escape_map0001.png", "p__escape.gif"):
        assert (out / name).exists(), (name, result.stdout)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_field_names_cannot_escape_the_output_folder_without_rendering(tmp_path, monkeypatch):
    """The same guard in-process, with the VTK and matplotlib renderers replaced by stubs that
    write the path they are given (the VTU/XDMF writers are the real ones)."""
    from pathlib import Path

    from geo_neuralop.data import load_predictions
    from geo_neuralop.viz import prediction_pictures, render_predictions

    def stub(cloud, truth, prediction, path, *args, **kwargs):
        Path(path).write_bytes(b"picture")
        return Path(path)

    for name in ("render_sphere_comparison", "render_mesh_comparison", "plot_sphere_maps",
                 "animate_rollout"):
        monkeypatch.setattr(prediction_pictures, name, stub)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    source = deep / "p.h5"
    _escape_predictions(source)
    out = deep / "out"
    written = render_predictions(load_predictions(source), out, "../p", field="../../escape",
                                 frame=1, sphere_map=True, animation="gif", vtu=True, xdmf=True)
    assert len(written) == 5
    assert _files_outside(tmp_path, [source, out]) == []
    assert all(Path(p).resolve().is_relative_to(out.resolve()) for p in written)
    assert (out / "_p__escape_frame0001.png").exists()


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_render_cli_errors_are_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys):
    """R16/R17 (--fps 0 / -5: ZeroDivisionError and PIL OverflowError tracebacks after the
    PNG), R18 (an unwritable --output-dir: PermissionError traceback, simulated since the
    tests may run as root), R20 (a folder given as the prediction file), R14 (broken JSON in
    an attribute). Nothing is rendered; VTK is never touched."""
    import pathlib

    import h5py

    from geo_neuralop.cli import main

    source = tmp_path / "p.h5"
    _escape_predictions(source)
    for fps in ("0", "-5"):
        assert main(["render", str(source), "--animate", "gif", f"--fps={fps}"]) == 2
        assert _one_line(capsys.readouterr().err) == (
            f"geo-neuralop render: --fps must be a positive number of frames per second, got "
            f"{fps}")
    assert main(["render", str(tmp_path)]) == 2
    assert "is a folder, not a prediction file" in _one_line(capsys.readouterr().err)
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "frozen":
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    assert main(["render", str(source), "--output-dir", str(tmp_path / "frozen")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "cannot access" in line and "frozen" in line and "Operation not permitted" in line
    with h5py.File(source, "a") as f:
        f.attrs["field_names"] = '["a", "b"'
    assert main(["render", str(source)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(source) in line and "field_names is not valid JSON" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]

"""VTU/PVD and XDMF series read back with meshio and PyVista (no rendering involved)."""

import numpy as np
import pytest

from geo_neuralop.geometry import icosphere, perforated_rectangle_mesh
from geo_neuralop.viz import write_vtu_series, write_xdmf_series


@pytest.fixture(scope="module")
def series():
    mesh = perforated_rectangle_mesh(0.05)
    x, y = mesh.pos.double().T.numpy()
    t = np.array([0.0, 0.25, 0.5])[:, None]
    truth = np.sin(6 * (x - t)) * np.cos(9 * y)
    prediction = truth + 0.1 * np.cos(3 * x)
    velocity = np.stack([np.cos(y - t), np.sin(x + t)], axis=-1)  # [T, N, 2]
    fields = {"truth": truth, "prediction": prediction, "error": np.abs(prediction - truth),
              "velocity": velocity}
    return mesh, fields, [0.0, 0.25, 0.5]


def test_vtu_series_reads_back_with_meshio_and_pyvista(series, tmp_path):
    import meshio
    import pyvista as pv

    mesh, fields, times = series
    pvd = write_vtu_series(mesh, fields, tmp_path / "out", name="cyl", times=times)
    assert pvd == tmp_path / "out" / "cyl.pvd"
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["cyl.pvd", "cyl_0000.vtu", "cyl_0001.vtu", "cyl_0002.vtu"]  # no temp files
    for k in range(3):
        back = meshio.read(tmp_path / "out" / f"cyl_{k:04d}.vtu")
        np.testing.assert_allclose(back.points[:, :2], mesh.pos.double().numpy(), atol=1e-6)
        np.testing.assert_array_equal(back.cells_dict["triangle"], mesh.faces.numpy())
        for name, value in fields.items():
            np.testing.assert_allclose(back.point_data[name], value[k], rtol=1e-6, atol=1e-7)
    reader = pv.get_reader(str(pvd))
    assert np.allclose(reader.time_values, times)
    reader.set_active_time_value(0.5)
    block = reader.read()[0]
    assert block.n_points == mesh.num_nodes and block.n_cells == mesh.faces.shape[0]
    np.testing.assert_allclose(block.point_data["prediction"], fields["prediction"][2], rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(block.point_data["velocity"], fields["velocity"][2], rtol=1e-6,
                               atol=1e-7)


def test_xdmf_series_reads_back_with_h5_beside_it(tmp_path):
    import meshio

    cloud = icosphere(2)
    z = cloud.pos.double()[:, 2].numpy()
    frames = np.stack([np.cos(3 * z + k) for k in range(4)])
    path = write_xdmf_series(cloud, {"h": frames}, tmp_path / "swe.xdmf", times=[0, 1, 2, 3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swe.h5", "swe.xdmf"]
    assert 'swe.h5:' in path.read_text()  # the XDMF points at the HDF5 beside it
    with meshio.xdmf.TimeSeriesReader(path) as reader:
        points, cells = reader.read_points_cells()
        np.testing.assert_allclose(points, cloud.pos.double().numpy(), atol=1e-6)
        assert reader.num_steps == 4
        for k in range(4):
            t, point_data, _ = reader.read_data(k)
            assert t == k
            np.testing.assert_allclose(point_data["h"], frames[k], rtol=1e-6)


def test_export_rejects_bad_fields(series, tmp_path):
    mesh, fields, _ = series
    with pytest.raises(ValueError, match="field 'truth' has shape"):
        write_vtu_series(mesh, {"truth": fields["truth"][:, :-3]}, tmp_path)
    with pytest.raises(ValueError, match="has 2 frames, others have 3"):
        write_vtu_series(mesh, {"truth": fields["truth"], "p": fields["truth"][:2]}, tmp_path)
    with pytest.raises(ValueError, match="times has 2 entries for 3 frames"):
        write_vtu_series(mesh, {"truth": fields["truth"]}, tmp_path, times=[0, 1])
    with pytest.raises(ValueError, match="fields is empty"):
        write_vtu_series(mesh, {}, tmp_path)
    with pytest.raises(ValueError, match="must end in .xdmf"):
        write_xdmf_series(mesh, {"truth": fields["truth"]}, tmp_path / "a.h5")
    assert not any(tmp_path.iterdir())

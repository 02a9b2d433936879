"""Checkpoints: save -> load gives identical outputs for every registered model; damaged,
foreign and mismatched files fail with clear errors; writes are atomic.

Model authors: add an entry to ``TEST_CASES`` for every model you register. An entry
maps the registered name to a function returning ``(config, inputs)``: a small
config for ``get_model(name, **config)`` (fast on CPU) and a tuple of positional
arguments for ``model(*inputs)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import jittered_rectangle_mesh
from geo_neuralop.models import get_model, list_models, load_model, read_checkpoint, save_model
from geo_neuralop.models.checkpoint import FORMAT, VERSION
from geo_neuralop.models.registry import register_model, unregister_model
from geo_neuralop.utils.digest import payload_digest
from tests.conftest import memory_cap


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def _unet_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 3, "hidden_channels": 4, "depth": 2}
    return config, (torch.randn(2, 2, 13, 10, generator=_generator()),)


def _mesh_graph_net_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 1, "hidden_channels": 8, "n_layers": 2}
    batch = Batch.from_data_list(
        [jittered_rectangle_mesh((5, 4)), jittered_rectangle_mesh((4, 6), seed=1)]
    )
    batch.x = torch.randn(batch.num_nodes, 2, generator=_generator())
    return config, (batch,)


def _fno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 1, "out_channels": 2, "n_modes": [4, 4], "hidden_channels": 8,
              "n_layers": 2}
    return config, (torch.randn(2, 1, 16, 12, generator=_generator()),)


def _amfno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 1, "out_channels": 1, "n_dim": 2, "hidden_channels": 8,
              "n_layers": 2}
    return config, (torch.randn(2, 1, 16, 16, generator=_generator()),)


def _sfno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 3, "out_channels": 3, "lmax": 8, "hidden_channels": 8,
              "n_layers": 2}
    return config, (torch.randn(2, 3, 9, 16, generator=_generator()),)


#: Registered name -> function returning (small config, positional forward inputs).
def _local_no_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "hidden_channels": 6,
              "n_layers": 2, "domain": [[0.0, 2.0], [0.0, 1.0]], "periodic": [True, False]}
    return config, (torch.randn(2, 2, 16, 12, generator=_generator()),)


def _local_sfno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 2, "lmax": 6, "hidden_channels": 4,
              "n_layers": 2, "disco_radius": 0.5}
    return config, (torch.randn(1, 2, 12, 24, generator=_generator()),)


def _mesh_no_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 1, "latent_shape": [12, 8],
              "hidden_channels": 6, "n_layers": 2, "mesh_layers": True, "mesh_radius": 0.4}
    mesh = jittered_rectangle_mesh((9, 7))
    mesh.x = torch.randn(mesh.num_nodes, 2, generator=_generator())
    return config, (mesh,)


def _tfno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 1, "out_channels": 2, "n_modes": [6, 6], "hidden_channels": 8,
              "n_layers": 2, "factorization": "cp", "rank": 5}
    return config, (torch.randn(2, 1, 16, 12, generator=_generator()),)


def _mg_tfno_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "levels": 1,
              "padding_fraction": 0.125, "hidden_channels": 6, "n_layers": 1, "rank": 0.3}
    return config, (torch.randn(2, 1, 16, 16, generator=_generator()),)


def _lsm_case() -> tuple[dict[str, Any], tuple]:
    config = {"in_channels": 2, "out_channels": 1, "hidden_channels": 8, "n_layers": 2,
              "heads": 2, "num_basis": 4, "norm": "instance"}
    return config, (torch.randn(2, 2, 12, 10, generator=_generator()),)


def _point_cloud_case(config: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    batch = Batch.from_data_list(
        [jittered_rectangle_mesh((5, 4)), jittered_rectangle_mesh((4, 6), seed=1)]
    )
    batch.x = torch.randn(batch.num_nodes, 2, generator=_generator())
    return {"in_channels": 2, "out_channels": 1, "pos_dim": 2, **config}, (batch,)


TEST_CASES: dict[str, Callable[[], tuple[dict[str, Any], tuple]]] = {
    "tfno": _tfno_case,
    "mg_tfno": _mg_tfno_case,
    "lsm": _lsm_case,
    "deeponet": lambda: _point_cloud_case({"n_basis": 8, "width": 16, "n_functions": 8}),
    "transolver": lambda: _point_cloud_case({"hidden_channels": 8, "n_layers": 1, "heads": 2,
                                             "slices": 4}),
    "mesh_no": _mesh_no_case,
    "local_sfno": _local_sfno_case,
    "local_no": _local_no_case,
    "unet": _unet_case,
    "mesh_graph_net": _mesh_graph_net_case,
    "fno": _fno_case,
    "amfno": _amfno_case,
    "sfno": _sfno_case,
}


def _assert_identical(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_identical(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_identical(a[key], b[key])
    else:
        assert a == b


def _perturb(model: torch.nn.Module) -> None:
    """Move every weight off its initial value, so a load that silently re-initializes fails."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=_generator()).to(p.dtype))


@pytest.mark.parametrize("name", list_models())
def test_save_load_identical_outputs(name, tmp_path):
    if name not in TEST_CASES:
        pytest.fail(
            f"registered model {name!r} has no entry in TEST_CASES of "
            "tests/models/test_checkpoint.py; add a small config and example inputs"
        )
    config, inputs = TEST_CASES[name]()
    model = get_model(name, **config)
    _perturb(model)
    model.eval()
    with torch.no_grad():
        expected = model(*inputs)
    path = tmp_path / f"{name}.pt"
    save_model(model, path, extra={"step": 7})
    # the stored content is plain enough for weights_only loading
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == VERSION and raw["name"] == name
    assert raw["config"] == model.config
    assert raw["extra"] == {"step": 7}
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    loaded.eval()
    with torch.no_grad():
        got = loaded(*inputs)
    _assert_identical(expected, got)
    # a fresh model of the same config differs, so the weights really came from the file
    fresh = get_model(name, **config).eval()
    for (key, p), q in zip(fresh.state_dict().items(), loaded.state_dict().values(), strict=True):
        if p.is_floating_point() and p.numel() > 1:
            assert not torch.equal(p, q), key


def test_float64_model_keeps_its_dtype(tmp_path):
    config, _ = _unet_case()
    model = get_model("unet", **config).double()
    _perturb(model)
    model.eval()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=_generator())
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt").eval()
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_read_checkpoint_returns_extra_and_version(tmp_path):
    import geo_neuralop

    config, _ = _unet_case()
    extra = {"epoch": 3, "mean": torch.tensor([1.0, 2.0]), "names": ["u", "v"]}
    save_model(get_model("unet", **config), tmp_path / "m.pt", extra=extra)
    payload = read_checkpoint(tmp_path / "m.pt")
    assert payload["geo_neuralop_version"] == geo_neuralop.__version__
    _assert_identical(payload["extra"], extra)


# --- damaged and foreign files ----------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    config, _ = _unet_case()
    model = get_model("unet", **config)
    _perturb(model)
    path = tmp_path / "model.pt"
    save_model(model, path)
    return model, path


def _rewrite(path, edit: Callable[[dict], None]) -> None:
    """Edit a checkpoint's payload and store it again with a valid digest."""
    payload = torch.load(path, weights_only=True)
    edit(payload)
    payload["sha256"] = payload_digest(payload)
    torch.save(payload, path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_model(tmp_path / "nothing.pt")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9, 0.999])
def test_truncated_file(saved, keep):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a checkpoint\n" * 40)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(path)


def test_flipped_weight_byte_is_detected(saved):
    """A bit flip inside tensor data passes torch.load; the stored digest catches it."""
    model, path = saved
    weight = model.head.weight.detach().contiguous().numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = bytes(data).find(weight)
    assert at >= 0
    data[at + len(weight) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # torch itself does not notice
    with pytest.raises(ValueError, match="corrupt or edited model file.*sha256"):
        load_model(path)


def test_wrong_format(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "someone-else", "weights": torch.ones(2)}, path)
    with pytest.raises(ValueError, match="not a geo_neuralop model checkpoint.*someone-else"):
        load_model(path)


def test_bare_state_dict_gets_a_hint(saved, tmp_path):
    model, _ = saved
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="bare state_dict"):
        load_model(path)


def test_pickled_module_is_refused_without_unpickling(saved, tmp_path):
    model, _ = saved
    path = tmp_path / "whole.pt"
    torch.save(model, path)  # a whole pickled module: arbitrary objects
    with pytest.raises(ValueError, match="objects other than tensors"):
        load_model(path)


def test_newer_version_is_refused(saved):
    _, path = saved
    _rewrite(path, lambda p: p.update(version=99))
    with pytest.raises(ValueError, match="version 99, newer"):
        load_model(path)


def test_version_1_files_of_geo_neuralop_0_1_are_refused_by_name(saved):
    """The 0.2 layer redesign renamed parameters and config keys: an old file is refused with
    a message naming its format version, not a list of missing weights."""
    _, path = saved
    _rewrite(path, lambda p: p.update(version=1, geo_neuralop_version="0.1.0"))
    with pytest.raises(ValueError, match="checkpoint format version 1, written by geo_neuralop "
                                         "0.1.0.*reads version 2 only"):
        load_model(path)


def test_unknown_model_name(saved):
    _, path = saved
    _rewrite(path, lambda p: p.update(name="no_such_net"))
    with pytest.raises(ValueError, match="unknown model 'no_such_net'.*unet"):
        load_model(path)


def test_config_not_accepted(saved):
    _, path = saved
    _rewrite(path, lambda p: p["config"].update(hiden=3))
    with pytest.raises(TypeError, match="cannot rebuild model 'unet'.*'hiden'"):
        load_model(path)


def test_state_dict_shape_mismatch(saved):
    _, path = saved
    _rewrite(path, lambda p: p["config"].update(hidden_channels=8))
    with pytest.raises(ValueError, match="do not fit model 'unet'.*shape mismatches.*head.weight"):
        load_model(path)


def test_state_dict_missing_and_unexpected_entries(saved):
    _, path = saved

    def edit(payload):
        payload["state_dict"]["surplus"] = torch.zeros(1)
        del payload["state_dict"]["head.bias"]

    _rewrite(path, edit)
    with pytest.raises(ValueError, match=r"missing entries \['head.bias'\].*unexpected.*surplus"):
        load_model(path)


def test_missing_entries(saved):
    _, path = saved
    _rewrite(path, lambda p: p.pop("config"))
    with pytest.raises(ValueError, match="missing checkpoint entries.*config"):
        load_model(path)


# --- saving -------------------------------------------------------------------------------------
class _Unregistered(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = {}
        self.w = torch.nn.Parameter(torch.ones(1))


class _BadConfig(torch.nn.Module):
    def __init__(self, scale: Any = 1.0) -> None:
        super().__init__()
        self.config = {"scale": scale}


def test_save_unregistered_model_raises(tmp_path):
    with pytest.raises(TypeError, match="not a registered model"):
        save_model(_Unregistered(), tmp_path / "x.pt")
    assert not any(tmp_path.iterdir())


def test_save_non_plain_config_raises(tmp_path):
    register_model("test_bad_config")(_BadConfig)
    try:
        # the registry records constructor arguments as plain values: refused when built
        with pytest.raises(TypeError, match=r"scale = tensor\(\[1.\]\) of type Tensor is not a "
                                            r"plain value"):
            save_model(_BadConfig(torch.ones(1)), tmp_path / "x.pt")
        with pytest.raises(TypeError, match=r"extra\['f'\]"):
            save_model(_BadConfig(), tmp_path / "x.pt", extra={"f": object()})
    finally:
        unregister_model("test_bad_config")
    assert not any(tmp_path.iterdir())


def test_failed_save_keeps_previous_file_and_leaves_no_temp(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]
    load_model(path)


def test_save_creates_parent_folders(tmp_path):
    config, _ = _unet_case()
    path = tmp_path / "a" / "b" / "m.pt"
    save_model(get_model("unet", **config), path)
    assert load_model(path).config["hidden_channels"] == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_map_location_cuda(saved):
    model, path = saved
    loaded = load_model(path, map_location="cuda").eval()
    assert all(p.is_cuda for p in loaded.parameters())
    x = torch.randn(1, 2, 16, 16, generator=_generator())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.cuda()).cpu(), model.eval()(x), rtol=1e-4, atol=1e-5)


# --- files edited by hand, crafted configs (RELIABILITY.md M43, M48, M52) -----------------------
def _store_without_digest(path, edit: Callable[[dict], None]) -> None:
    payload = torch.load(path, weights_only=True)
    edit(payload)
    payload.pop("sha256")
    torch.save(payload, path)


def test_edited_weight_without_its_digest_is_refused(saved):
    """M43: deleting the digest no longer lets an edited weight load."""
    _, path = saved

    def edit(payload):
        payload["state_dict"]["head.weight"].mul_(2.0)

    _store_without_digest(path, edit)
    with pytest.raises(ValueError, match="has no sha256 digest.*edited"):
        load_model(path)


def test_edited_activation_without_its_digest_is_refused(tmp_path):
    """M48: gelu -> relu in the stored config (digest removed) is refused, not loaded as a
    relu model with gelu weights."""
    config, _ = _fno_case()
    path = tmp_path / "fno.pt"
    save_model(get_model("fno", **config), path)
    assert read_checkpoint(path)["config"]["activation"] == "gelu"
    _store_without_digest(path, lambda p: p["config"].update(activation="relu"))
    with pytest.raises(ValueError, match="sha256"):
        load_model(path)


def test_small_file_asking_for_a_huge_model_is_refused_before_building(saved):
    """M52: a config of tens of GB next to a few KB of weights is refused from the meta-device
    shapes, before any memory is allocated (the real build would need ~57 GB)."""
    import resource

    _, path = saved
    config, _ = _fno_case()
    model = get_model("fno", **config)
    torch.save({"format": FORMAT, "version": VERSION, "name": "fno",
                "state_dict": model.state_dict(), "geo_neuralop_version": "0.2",
                "extra": None,
                "config": {**model.config, "hidden_channels": 512, "n_modes": [32, 32],
                           "n_layers": 50}}, path)
    payload = torch.load(path, weights_only=True)
    payload["sha256"] = payload_digest(payload)
    torch.save(payload, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with memory_cap(2 * 1024**3), pytest.raises(ValueError, match=r"do not fit model 'fno'.*"
                                                                  r"shape mismatches"):
        load_model(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200


class _BigTable(torch.nn.Module):
    """A model whose non-persistent buffer (not stored in files) grows with its config."""

    def __init__(self, table_size: int = 4) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("table", torch.zeros(table_size), persistent=False)


def test_model_holding_far_more_than_its_file_is_refused(tmp_path):
    """The bound on tensors a file does not store: a config asking for a 17 GB non-persistent
    table next to 12 bytes of weights is refused on the meta device, before allocating."""
    from geo_neuralop.models.checkpoint import build_checked_model

    register_model("test_big_table")(_BigTable)
    try:
        path = tmp_path / "t.pt"
        save_model(_BigTable(), path)
        _rewrite(path, lambda p: p["config"].update(table_size=2**32))
        with memory_cap(2 * 1024**3), pytest.raises(ValueError, match="would hold 17.2 GB of "
                                                                      "tensors for 1.2e-08 GB"):
            load_model(path)
        small = build_checked_model("test_big_table", {"table_size": 1000},
                                    {"weight": torch.full((3,), 2.0)}, "x.pt")
        assert torch.equal(small.weight, torch.full((3,), 2.0)) and small.table.numel() == 1000
        with pytest.raises(ValueError, match="would hold"):
            build_checked_model("test_big_table", {"table_size": 1000},
                                {"weight": torch.full((3,), 2.0)}, "x.pt", max_unstored_bytes=0)
    finally:
        unregister_model("test_big_table")

"""Experiment configs: defaults, every kind of error with its key path, YAML details, overrides,
and the example configs."""

from collections.abc import Sequence
from pathlib import Path

import pytest

from geo_neuralop.training.config import (
    ConfigError,
    apply_overrides,
    describe,
    dump_config,
    load_config,
    matches,
    read_yaml,
    validate_config,
)
from geo_neuralop.training.trainer import TrainerConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "configs").glob("*.yaml"))


def minimal(tmp_path, **sections):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "card.yaml").write_text("format: geo_neuralop.dataset\n")
    cfg = {"data": {"path": str(data)},
           "model": {"name": "fno", "n_modes": [8, 8], "hidden_channels": 16}}
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def errors_of(raw, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(raw, **kwargs)
    for error in info.value.errors:  # each problem is in the message
        assert error in str(info.value)
    return info.value.errors


def test_defaults_are_filled_and_given_values_kept(tmp_path):
    cfg = validate_config(minimal(tmp_path, trainer={"epochs": 3, "lr": 0.01}), source="x.yaml")
    assert cfg["name"] == "x"
    assert cfg["data"]["input_steps"] == 1 and cfg["data"]["normalize"] is True
    assert cfg["data"]["node_types"] == "auto" and cfg["data"]["val_split"] == "val"
    assert cfg["model"] == {"name": "fno", "n_modes": [8, 8], "hidden_channels": 16,
                            "residual": "auto"}
    defaults = TrainerConfig()
    assert cfg["trainer"]["epochs"] == 3 and cfg["trainer"]["lr"] == 0.01
    assert cfg["trainer"]["batch_size"] == defaults.batch_size
    assert cfg["trainer"]["out_dir"] is None and cfg["trainer"]["loss"] == "rel_l2"
    assert cfg["evaluation"]["split"] == "test" and cfg["evaluation"]["prediction_files"] == 2


def test_wrong_type_is_reported_with_the_key_path(tmp_path):
    raw = minimal(tmp_path, model={"hidden_channels": "abc"})
    assert errors_of(raw) == ["model.hidden_channels: expected int, got 'abc'"]
    raw = minimal(tmp_path, model={"n_modes": "8"})
    assert errors_of(raw) == ["model.n_modes: expected int or list of int, got '8'"]
    raw = minimal(tmp_path, trainer={"batch_size": 2.5}, data={"normalize": "yes"})
    assert sorted(errors_of(raw)) == ["data.normalize: expected true/false, got 'yes'",
                                      "trainer.batch_size: expected int, got 2.5"]
    # bools are not ints
    assert errors_of(minimal(tmp_path, data={"input_steps": True})) == [
        "data.input_steps: expected int, got True"]


def test_unknown_keys_get_the_closest_known_name(tmp_path):
    raw = minimal(tmp_path, trainer={"epoch": 2}, model={"hiden_channels": 8},
                  data={"input_step": 2})
    raw["evaluaton"] = {}
    found = errors_of(raw)
    assert "evaluaton: unknown section; did you mean 'evaluation'?" in found
    assert "trainer.epoch: unknown key; did you mean 'epochs'?" in found
    assert "data.input_step: unknown key; did you mean 'input_steps'?" in found
    assert "model.hiden_channels: unknown argument of 'fno'; did you mean 'hidden_channels'?" \
        in found
    assert len(found) == 4  # every problem at once
    raw = minimal(tmp_path, model={"name": "fnoo"})
    assert errors_of(raw) == ["model.name: unknown model 'fnoo'; did you mean 'fno'?"]


def test_missing_keys_and_sections(tmp_path):
    raw = minimal(tmp_path)
    del raw["model"]["n_modes"]
    assert errors_of(raw) == ["model.n_modes: missing (required by 'fno', type int or list "
                              "of int)"]
    found = errors_of({"model": {"name": "fno", "n_modes": 8}})
    assert found == ["data: missing section"]
    found = errors_of({"data": {"input_steps": 1}, "model": {"n_modes": 8}})
    assert found[0].startswith("data.path: missing (required)")
    assert found[1].startswith("model.name: missing (required): one of")
    # in/out channels come from the data: not required
    cfg = validate_config(minimal(tmp_path))
    assert "in_channels" not in cfg["model"]


def test_missing_dataset_is_reported_with_the_fix(tmp_path):
    raw = minimal(tmp_path)
    raw["data"]["path"] = str(tmp_path / "nowhere")
    (problem,) = errors_of(raw)
    assert problem.startswith(f"data.path: no dataset at '{tmp_path / 'nowhere'}'")
    assert "geo-neuralop generate GENERATOR --out" in problem
    (tmp_path / "half").mkdir()
    raw["data"]["path"] = str(tmp_path / "half")
    (problem,) = errors_of(raw)
    assert "holds no dataset card (card.yaml)" in problem
    assert validate_config(raw, check_paths=False)["data"]["path"] == str(tmp_path / "half")


def test_trainer_ranges_use_trainer_config_messages(tmp_path):
    raw = minimal(tmp_path, trainer={"lr": -1, "scheduler": "cos", "loss": "l3"})
    found = sorted(errors_of(raw))
    assert found == [
        "trainer.loss: must be one of ['rel_l2', 'abs_l2', 'rel_h1', 'abs_h1', 'rel_sobolev', "
        "'abs_sobolev'], got 'l3'",
        "trainer.lr: must be a positive number, got -1",
        "trainer.scheduler: must be one of ('cosine', 'step', 'none'), got 'cos'",
    ]
    found = errors_of(minimal(tmp_path, evaluation={"checkpoint": "first", "rollout_steps": -1}))
    assert sorted(found) == ["evaluation.checkpoint: must be one of ['best', 'last'], got 'first'",
                             "evaluation.rollout_steps: must be >= 0, got -1"]


def test_recipe_settings_are_in_the_schema_with_precise_messages(tmp_path):
    good = minimal(tmp_path, trainer={"rollout_steps": 2, "pushforward": True, "ema_decay": 0.99,
                                      "grad_accumulation_steps": 2, "compile": False,
                                      "trainable": ["last_block"], "init_from": "run/model.pt",
                                      "loss": "rel_sobolev", "sobolev_s": -0.5})
    cfg = validate_config(good)
    assert cfg["trainer"]["rollout_steps"] == 2 and cfg["trainer"]["sobolev_s"] == -0.5
    bad = minimal(tmp_path, trainer={"rollout_steps": 0, "ema_decay": 1.5, "trainable": [],
                                     "grad_accumulation_steps": "2", "compile_backend": "tvm",
                                     "rollout_step": 2, "sobolev_s": "minus one"})
    assert sorted(errors_of(bad)) == [
        "trainer.compile_backend: must be one of ('inductor', 'aot_eager', 'eager'), got 'tvm'",
        "trainer.ema_decay: must be a number in (0, 1) (e.g. 0.999) or null, got 1.5",
        "trainer.grad_accumulation_steps: expected int, got '2'",
        "trainer.rollout_step: unknown key; did you mean 'rollout_steps'?",
        "trainer.rollout_steps: must be a positive integer, got 0",
        "trainer.sobolev_s: expected float, got 'minus one'",
        "trainer.trainable: must be a non-empty list of parameter-name patterns (e.g. "
        "['last_block'] or ['blocks.3.*']) or null, got []",
    ]


def test_yaml_scientific_notation_and_syntax_errors(tmp_path):
    values = read_yaml("a: 1e-3\nb: 5E+4\nc: -2.5e-1\nd: 10\ne: 1.0e-3\nf: 1e5x\ng: .5\n")
    assert values == {"a": 0.001, "b": 50000.0, "c": -0.25, "d": 10, "e": 0.001, "f": "1e5x",
                      "g": 0.5}
    assert isinstance(values["d"], int)
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  path: x\nmodel: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: YAML syntax error at line 4"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_set_nested_values_read_as_yaml(tmp_path):
    raw = minimal(tmp_path)
    out = apply_overrides(raw, ["trainer.epochs=5", "model.n_modes=[12, 12]",
                                "evaluation.rollout_steps=null", "trainer.lr=3e-4"])
    assert out["trainer"] == {"epochs": 5, "lr": 0.0003}
    assert out["model"]["n_modes"] == [12, 12] and out["evaluation"]["rollout_steps"] is None
    assert raw["model"]["n_modes"] == [8, 8]  # the input is not modified
    with pytest.raises(ConfigError, match=r"--set 'epochs': expected KEY.PATH=VALUE"):
        apply_overrides(raw, ["epochs"])
    with pytest.raises(ConfigError, match=r"model.name is 'fno', not a section"):
        apply_overrides(raw, ["model.name.x=1"])
    # an override with a typo is caught by validation, with its path
    path = tmp_path / "run.yaml"
    dump_config(raw, path)
    with pytest.raises(ConfigError, match=r"trainer.epohcs: unknown key; did you mean 'epochs'"):
        load_config(path, ["trainer.epohcs=3"])


def test_dump_and_load_round_trip(tmp_path):
    cfg = validate_config(minimal(tmp_path, trainer={"lr": 1e-4}), source="a.yaml")
    path = dump_config(cfg, tmp_path / "out" / "config.yaml")
    text = path.read_text()
    assert text.splitlines()[0] == "name: a" and "n_modes: [8, 8]" in text
    assert load_config(path) == cfg


@pytest.mark.parametrize(("value", "hint", "ok"), [
    (3, int, True), (True, int, False), (3, float, True), (3.5, int, False),
    ([1, 2], Sequence[int], True), ((1, 2), Sequence[int], True), ([1, "a"], Sequence[int], False),
    (None, int | None, True), ("x", int | None, False), (4, int | Sequence[int], True),
    ([[0.0, 1.0]], Sequence[Sequence[float]] | None, True), ({"a": 1}, dict, True),
    ("abc", Sequence[int], False),
])
def test_type_matching(value, hint, ok):
    assert matches(value, hint) is ok


def test_type_descriptions():
    assert describe(int | None) == "int or null"
    assert describe(Sequence[int] | int) == "list of int or int"
    assert describe(bool) == "true/false"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_configs_are_valid(path):
    cfg = load_config(path, check_paths=False)
    assert cfg["name"] == path.stem
    assert cfg["data"]["path"].startswith("datasets/")
    assert cfg["trainer"]["epochs"] >= 1


def test_there_are_example_configs_for_every_benchmark():
    assert {p.stem for p in EXAMPLES} >= {"cylinder", "shallow_water", "darcy", "ns2d"}
    models = {p.stem: load_config(p, check_paths=False)["model"]["name"] for p in EXAMPLES}
    assert models["cylinder"] == "mesh_no" and models["shallow_water"] == "local_sfno"
    assert models["ns2d"] == "local_no" and models["darcy"] in ("fno", "local_no")

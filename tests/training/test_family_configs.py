"""The example configs of the operator families: each validates and builds its model on the data
geometry it names; one trains end to end through `geo-neuralop train`; the Spectral-Refiner and
rollout fine-tuning recipes run from YAML and change only what they should."""

from pathlib import Path

import pytest
import torch

from geo_neuralop.cli import main
from geo_neuralop.data import generate_dataset
from geo_neuralop.models import load_model
from geo_neuralop.training.adapters import DataSpec, model_family
from geo_neuralop.training.config import ConfigError, load_config
from geo_neuralop.training.experiment import build_experiment, build_model, run_experiment

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs" / "families"

GEOMETRIES = {  # the datasets the configs name, as the experiment describes them
    "datasets/darcy": ("static", ["permeability"], ["pressure"],
                       {"kind": "regular", "dim": 2, "shape": [64, 64],
                        "domain": [[0.0, 1.0], [0.0, 1.0]], "periodic": [False, False]}),
    "datasets/ns2d": ("rollout", ["vorticity"], ["vorticity"],
                      {"kind": "regular", "dim": 2, "shape": [64, 64],
                       "domain": [[0.0, 1.0], [0.0, 1.0]], "periodic": [True, True]}),
    "datasets/swe": ("rollout", ["height", "vorticity", "divergence"],
                     ["height", "vorticity", "divergence"],
                     {"kind": "sphere", "dim": 3, "shape": [32, 64], "grid": "equiangular"}),
    "datasets/cylinder": ("rollout", ["u", "v", "p"], ["u", "v", "p"], {"kind": "mesh", "dim": 2}),
}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_family_config_validates_and_builds(path):
    cfg = load_config(path, check_paths=False)
    kind, inputs, targets, geometry = GEOMETRIES[cfg["data"]["path"]]
    spec = DataSpec(family=model_family(cfg["model"]["name"]), kind=kind, inputs=inputs,
                    targets=targets, geometry=geometry)
    model = build_model(cfg["model"], spec)
    assert model.config["in_channels"] == len(inputs)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("family_data")
    generate_dataset("darcy", root / "darcy", n_samples=6, params={"resolution": 16},
                     progress=False, log=None)
    generate_dataset("ns2d", root / "ns2d", n_samples=4, params={"resolution": 16, "n_frames": 6},
                     progress=False, log=None)
    return root


def test_tfno_config_trains_end_to_end_through_the_cli(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(CONFIGS / "tfno_darcy.yaml"), "--out", str(out),
                 "--set", f"data.path={tiny / 'darcy'}", "--set", "trainer.epochs=2",
                 "--set", "trainer.batch_size=2", "--set", "trainer.progress=false",
                 "--set", "trainer.device=cpu", "--set", "evaluation.device=cpu",
                 "--set", "model.n_modes=[8, 8]"])
    assert code == 0, capsys.readouterr().err
    model = load_model(out / "model.pt")
    assert model.blocks[0].conv.factorization == "tucker"
    assert (out / "evaluation" / "metrics.json").exists()


def test_spectral_refiner_recipe_from_yaml(tiny, tmp_path):
    """Base FNO, then the refinement: only the last block moves, with the H^-1 loss."""
    config = CONFIGS / "spectral_refiner_ns2d.yaml"
    common = [f"data.path={tiny / 'ns2d'}", "trainer.batch_size=4", "trainer.progress=false",
              "trainer.device=cpu", "evaluation.device=cpu", "evaluation.rollout_steps=2",
              "model.hidden_channels=8", "model.n_modes=[8, 8]", "trainer.epochs=1"]
    run_experiment(config, tmp_path / "base", overrides=[
        *common, "trainer.loss=rel_l2", "trainer.trainable=null", "trainer.init_from=null"])
    exp = build_experiment(config, tmp_path / "refined", overrides=[
        *common, f"trainer.init_from={tmp_path / 'base' / 'model.pt'}"])
    assert type(exp.trainer.loss_fn).__name__ == "SobolevLoss" and exp.trainer.loss_fn.s == -1.0
    run_experiment(config, tmp_path / "refined", overrides=[
        *common, f"trainer.init_from={tmp_path / 'base' / 'model.pt'}"])
    base = load_model(tmp_path / "base" / "model.pt").state_dict()
    refined = load_model(tmp_path / "refined" / "model.pt").state_dict()
    changed = {k for k in base if not torch.equal(base[k], refined[k])}
    assert changed and all(k.startswith("blocks.3.") for k in changed), changed


def test_recipe_settings_that_do_not_fit_the_model_or_data(tiny, tmp_path):
    config = CONFIGS / "spectral_refiner_ns2d.yaml"
    with pytest.raises(ConfigError, match="trainer.init_from: no file at"):
        build_experiment(config, tmp_path / "x", overrides=[f"data.path={tiny / 'ns2d'}"])
    with pytest.raises(ConfigError, match="trainer.trainable: pattern 'decoder.*'"):
        build_experiment(config, tmp_path / "x", overrides=[
            f"data.path={tiny / 'ns2d'}", "trainer.init_from=null",
            "trainer.trainable=[decoder.*]"])
    with pytest.raises(ConfigError, match="trainer.rollout_steps: 2 needs time-dependent data"):
        build_experiment(CONFIGS / "tfno_darcy.yaml", tmp_path / "y", overrides=[
            f"data.path={tiny / 'darcy'}", "trainer.rollout_steps=2"])
    with pytest.raises(ConfigError, match="trainer.rollout_steps"):
        build_experiment(config, tmp_path / "z", overrides=[
            f"data.path={tiny / 'ns2d'}", "trainer.init_from=null", "trainer.rollout_steps=9"])


def test_two_step_rollout_training_from_yaml(tiny, tmp_path):
    """A residual FNO trained with 2-step rollouts and accumulation: the first step's loss is
    the mean of the two one-step losses the model gives at its initial weights."""
    config = CONFIGS / "spectral_refiner_ns2d.yaml"
    exp = build_experiment(config, tmp_path / "r", overrides=[
        f"data.path={tiny / 'ns2d'}", "trainer.init_from=null", "trainer.trainable=null",
        "trainer.loss=rel_l2", "trainer.rollout_steps=2", "trainer.grad_accumulation_steps=2",
        "trainer.batch_size=4", "model.hidden_channels=8", "trainer.epochs=1",
        "trainer.progress=false", "trainer.device=cpu", "trainer.shuffle=false"])
    x, y = (torch.stack(v) for v in zip(*[exp.trainer.train_dataset[i] for i in range(4)],
                                         strict=True))
    assert y.shape[1] == 2  # two target frames per sample
    with torch.no_grad():
        first = exp.adapter.forward(exp.model, x)
        second = exp.adapter.forward(exp.model, exp.adapter.next_input(x, first))
        loss = exp.trainer.loss_fn
        expected = 0.5 * (float(loss(first, y[:, 0])) + float(loss(second, y[:, 1])))
    seen = []
    exp.trainer.step_callbacks.append(lambda tr, info: seen.append(info["loss"]))
    exp.trainer.fit()
    assert seen[0] == pytest.approx(expected, rel=1e-5)

"""The accuracy-study harness on a tiny study: result files, resume, skip, stale refusal.

``benchmarks.accuracy.runner`` registers the peer adapters as models when imported, so
it is imported inside the tests (after collection; ``conftest.py`` unregisters them).
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import statistics

import numpy as np
import pytest
import torch

from benchmarks.accuracy import datasets as study_datasets
from benchmarks.accuracy import report
from benchmarks.accuracy.datasets import derive_strided, ensure_datasets
from benchmarks.accuracy.report import mean_std, write_report
from benchmarks.accuracy.spec import Claim, DatasetSpec, ModelEntry, StudySpec
from benchmarks.accuracy.studies import STUDIES, get_study
from geo_neuralop.data import generate_dataset, read_trajectory
from geo_neuralop.data.storage import sample_path


def tiny_study(lr: float = 2e-3) -> StudySpec:
    """Darcy on a 9 x 9 grid, FNO vs AM-FNO, one epoch, two seeds, both budgets."""
    return StudySpec(
        name="tiny", title="Tiny Darcy", description="Harness test.",
        datasets={"train": DatasetSpec("darcy", 10, {"resolution": 9})},
        train_dataset="train",
        models=(ModelEntry("FNO", {"name": "fno", "n_modes": [4, 4], "hidden_channels": 16,
                                   "n_layers": 1}),
                ModelEntry("AM-FNO", {"name": "amfno", "hidden_channels": 4, "n_layers": 1})),
        reference="FNO", data={},
        trainer={"epochs": 1, "batch_size": 4, "lr": lr, "device": "cpu"},
        evaluation={"split": "test", "prediction_files": 0},
        claims=(Claim("AM-FNO", "FNO", 0.31, "test"),), seeds=(0, 1))


@pytest.fixture
def runner():
    from benchmarks.accuracy import runner as module

    return module


@pytest.fixture
def paths(tmp_path, runner):
    return runner.StudyPaths(tmp_path / "work", tmp_path / "results")


def run_files(paths) -> dict[str, int]:
    folder = paths.results / "tiny" / "runs"
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.json"))}


def test_results_are_written_then_skipped_resumed_and_refused_when_stale(paths, runner,
                                                                       monkeypatch):
    run_study, StaleResultError = runner.run_study, runner.StaleResultError  # noqa: N806
    spec = tiny_study()
    log: list[str] = []
    done = run_study(spec, paths, log=log.append)
    # two models x two seeds at equal epochs; the time budget gives each model
    # round(t_ref / t_model) epochs, which may equal the equal-epoch run (reused)
    budget = json.loads((paths.results / "tiny" / "budget.json").read_text())
    extra = sum(2 for e in budget["epochs"].values() if e != 1)
    assert len(done["ran"]) == 4 + extra and not done["skipped"]
    files = run_files(paths)
    assert len(files) == 4 + extra
    record = json.loads((paths.results / "tiny" / "runs" / "fno__s0__e1.json").read_text())
    params = json.loads((paths.results / "tiny" / "params.json").read_text())["models"]
    assert record["params"] == params["FNO"]["params"] and params["FNO"]["ratio"] == 1.0
    assert abs(params["AM-FNO"]["ratio"] - 1) < 0.1  # its width was tuned to FNO's count
    assert 0 < record["test"]["one_step"]["rel_l2"] < 10
    agg = write_report(spec, paths.results / "tiny")
    assert (paths.results / "tiny" / "summary.md").exists()
    assert (paths.results / "tiny" / "efficiency.png").stat().st_size > 1000
    stat = agg["models"]["FNO"]["budgets"]["epochs"]["metrics"]["one_step/rel_l2"]
    values = [json.loads((paths.results / "tiny" / "runs" / f"fno__s{s}__e1.json").read_text())
              ["test"]["one_step"]["rel_l2"] for s in (0, 1)]
    assert stat["n"] == 2 and stat["mean"] == pytest.approx(statistics.fmean(values))
    assert stat["std"] == pytest.approx(statistics.stdev(values))

    # a second invocation trains nothing and leaves the files alone
    again = run_study(spec, paths, log=log.append)
    assert not again["ran"] and len(again["skipped"]) == 4 + extra
    assert run_files(paths) == files

    # a result file lost after training: the run folder's checkpoints are reused
    (paths.results / "tiny" / "runs" / "fno__s1__e1.json").unlink()
    resumed = run_study(spec, paths, seeds=[1], budgets=["epochs"], log=log.append)
    assert resumed["ran"] == ["fno__s1__e1"]
    assert any("resuming FNO seed 1" in line for line in log)
    again_record = json.loads((paths.results / "tiny" / "runs" / "fno__s1__e1.json")
                              .read_text())
    assert again_record["test"]["one_step"]["rel_l2"] == pytest.approx(values[1])

    # another config: refused before anything trains, naming the files
    with pytest.raises(StaleResultError, match="config changed"):
        run_study(tiny_study(lr=1e-3), paths, log=log.append)
    assert run_files(paths).keys() == files.keys()

    # other code: refused, naming the changed part
    real = runner.code_fingerprint()

    def changed():
        parts = {**real["parts"], "geo_neuralop.models": "0" * 16}
        return {"total": "1" * 16, "parts": parts}

    monkeypatch.setattr(runner, "code_fingerprint", changed)
    with pytest.raises(StaleResultError, match=r"code changed \(geo_neuralop.models\)"):
        run_study(spec, paths, log=log.append)
    # ... and rerun on request
    rerun = run_study(spec, paths, seeds=[0], budgets=["epochs"], rerun_stale=True,
                      log=log.append)
    assert sorted(rerun["ran"]) == ["am_fno__s0__e1", "fno__s0__e1"]


def test_parameter_count_counts_complex_weights_twice(runner):
    module = torch.nn.Linear(3, 2)  # 6 weights + 2 biases
    module.spectral = torch.nn.Parameter(torch.zeros(4, dtype=torch.cfloat))
    assert runner.parameter_count(module) == 8 + 2 * 4


def test_a_partial_run_with_other_settings_is_refused(paths, runner):
    spec = tiny_study()
    runner.run_study(spec, paths, seeds=[0], budgets=["epochs"], labels=["FNO"], log=lambda m: None)
    (paths.results / "tiny" / "runs" / "fno__s0__e1.json").unlink()
    marker = paths.work / "runs" / "tiny" / "fno__s0__e1" / "study_run.json"
    record = json.loads(marker.read_text())
    record["fingerprint"]["config"] = "f" * 16
    marker.write_text(json.dumps(record))
    with pytest.raises(runner.StaleResultError, match="partial run"):
        runner.run_study(spec, paths, seeds=[0], budgets=["epochs"], labels=["FNO"],
                         log=lambda m: None)


def test_time_budget_gives_each_model_the_reference_wall_clock(runner):
    time_budget_epochs = runner.time_budget_epochs
    epochs = time_budget_epochs({"FNO": 3.0, "LocalNO": 7.5, "UNet": 1.2}, "FNO", 10)
    # 30 s of training: 30 / 7.5 = 4 epochs, 30 / 1.2 = 25 epochs
    assert epochs == {"FNO": 10, "LocalNO": 4, "UNet": 25}
    assert time_budget_epochs({"a": 1.0, "b": 100.0}, "a", 2)["b"] == 1  # at least one
    with pytest.raises(ValueError, match="reference"):
        time_budget_epochs({"a": 1.0}, "b", 2)


def test_mean_and_sample_std_match_numpy():
    values = [0.12, 0.15, 0.11]
    stat = mean_std(values + [None, float("nan")])
    assert stat["n"] == 3
    assert stat["mean"] == pytest.approx(np.mean(values))
    assert stat["std"] == pytest.approx(np.std(values, ddof=1))
    assert mean_std([0.2]) == {"mean": 0.2, "std": None, "n": 1}


def test_doctests_of_the_harness(runner):
    for module in (report, runner):
        assert doctest.testmod(module).failed == 0


def test_strided_navier_stokes_dataset_equals_direct_generation(tmp_path):
    params = {"solver_resolution": 8, "n_frames": 2, "viscosity": 1e-3}
    fine = DatasetSpec("ns2d", 3, {**params, "resolution": 8})
    coarse = DatasetSpec("ns2d", 3, {**params, "resolution": 4}, stride_of="fine")
    roots = ensure_datasets({"fine": fine, "coarse": coarse}, tmp_path, log=None)
    direct = tmp_path / "direct"
    generate_dataset("ns2d", direct, 3, params={**params, "resolution": 4}, progress=False,
                     log=None)
    for i in range(3):
        a = read_trajectory(sample_path(roots["coarse"], i))
        b = read_trajectory(sample_path(direct, i))
        np.testing.assert_array_equal(a.fields["vorticity"], b.fields["vorticity"])
        np.testing.assert_array_equal(a.pos, b.pos)
        np.testing.assert_array_equal(a.weights, b.weights)
    card = (roots["coarse"] / "card.yaml").read_text()
    assert card.split("files:")[0].count("resolution: 4") >= 1
    with pytest.raises(ValueError, match="only 'resolution' may differ"):
        derive_strided(roots["fine"], DatasetSpec("ns2d", 3, {**params, "resolution": 4,
                                                              "viscosity": 2e-3}),
                       tmp_path / "other", log=None)
    assert study_datasets.STRIDABLE == ("ns2d",)


def test_every_study_is_well_formed():
    for name in STUDIES:
        for quick in (False, True):
            spec = get_study(name, quick)
            assert spec.reference in [m.label for m in spec.models]
            assert spec.seeds == (0,) if quick else len(spec.seeds) >= 2
    full = get_study("swe")
    assert full.seeds == (0, 1, 2) and full.trainer["epochs"] > 2
    with pytest.raises(ValueError, match="unknown study"):
        get_study("nope")


def test_study_specs_reject_bad_input():
    with pytest.raises(ValueError, match="reference"):
        StudySpec(name="x", title="x", description="", datasets={"t": DatasetSpec("darcy", 4)},
                  train_dataset="t", models=(ModelEntry("A", {"name": "fno"}),),
                  reference="B", data={}, trainer={"epochs": 1}, evaluation={})
    with pytest.raises(ValueError, match="unique"):
        StudySpec(name="x", title="x", description="", datasets={"t": DatasetSpec("darcy", 4)},
                  train_dataset="t", models=(ModelEntry("A b", {"name": "fno"}),
                                             ModelEntry("a-B", {"name": "fno"})),
                  reference="A b", data={}, trainer={"epochs": 1}, evaluation={})
    with pytest.raises(ValueError, match="registered 'name'"):
        ModelEntry("A", {"hidden_channels": 3})


def test_cli_lists_the_studies(capsys):
    from geo_neuralop.cli import main

    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    assert "cylinder_gap" in out and "LSNO (torch-harmonics)" in out
    assert main(["study", "nope"]) == 2


@pytest.mark.slow
def test_quick_studies_run_end_to_end(tmp_path):
    """``geo-neuralop study all --quick`` (about 5 minutes on two shared cores)."""
    pytest.importorskip("neuralop")
    from geo_neuralop.cli import main

    torch.set_num_threads(1)
    args = ["study", "all", "--quick", "--work-dir", str(tmp_path / "w"), "--results-dir",
            str(tmp_path / "r")]
    assert main(args) == 0
    for name in STUDIES:
        summary = json.loads((tmp_path / "r" / "quick" / name / "summary.json").read_text())
        for label, model in summary["models"].items():
            stat = model["budgets"]["epochs"]["metrics"]["one_step/rel_l2"]
            assert stat["n"] == 1 and np.isfinite(stat["mean"]), (name, label)
    readme = (tmp_path / "r" / "quick" / "README.md").read_text()
    assert readme.startswith("## Results")
    assert main(args) == 0  # everything is skipped the second time


def test_every_model_gets_the_same_learning_rate_search(paths, runner):
    """One run per learning rate on the first seed; the lowest validation loss is used."""
    spec = dataclasses.replace(tiny_study(), tune_values=(1e-3, 2e-3), budgets=("epochs",))
    done = runner.run_study(spec, paths, log=lambda m: None)
    assert len(done["ran"]) == 2 * 2 + 2  # tuning: 2 models x 2 rates; then seed 1
    tuning = json.loads((paths.results / "tiny" / "tuning.json").read_text())
    for label, slug_ in (("FNO", "fno"), ("AM-FNO", "am_fno")):
        losses = {}
        for lr, tag in ((1e-3, "__lr0.001"), (2e-3, "")):
            record = json.loads((paths.results / "tiny" / "runs" /
                                 f"{slug_}__s0__e1{tag}.json").read_text())
            assert record["trainer"]["lr"] == lr
            losses[lr] = min(record["train"]["val_loss"])
        best = min(losses, key=losses.get)
        assert tuning["chosen"][label] == best
        tag = "" if best == 2e-3 else "__lr0.001"
        seed1 = json.loads((paths.results / "tiny" / "runs" / f"{slug_}__s1__e1{tag}.json")
                           .read_text())
        assert seed1["trainer"]["lr"] == best
    agg = write_report(spec, paths.results / "tiny")
    assert agg["models"]["FNO"]["lr"] == tuning["chosen"]["FNO"]
    assert "## Tuning" in (paths.results / "tiny" / "summary.md").read_text()


def test_a_code_change_does_not_hold_back_later_seeds(paths, runner, monkeypatch):
    """Seed 0's tuning runs made by older code still choose the learning rate of seed 1
    (as the report keeps such runs); seed 0's runs are not redone."""
    spec = dataclasses.replace(tiny_study(), tune_values=(1e-3, 2e-3), budgets=("epochs",))
    runner.run_study(spec, paths, seeds=[0], log=lambda m: None)
    chosen = json.loads((paths.results / "tiny" / "tuning.json").read_text())["chosen"]
    real = runner.code_fingerprint()
    monkeypatch.setattr(runner, "code_fingerprint", lambda: {
        "total": "1" * 16, "parts": {**real["parts"], "geo_neuralop.models": "0" * 16}})
    done = runner.run_study(spec, paths, seeds=[1], log=lambda m: None)
    assert sorted(done["ran"]) == sorted(
        f"{slug_}__s1__e1{'' if chosen[label] == 2e-3 else '__lr0.001'}"
        for label, slug_ in (("FNO", "fno"), ("AM-FNO", "am_fno")))
    for label, slug_ in (("FNO", "fno"), ("AM-FNO", "am_fno")):
        tag = "" if chosen[label] == 2e-3 else "__lr0.001"
        record = json.loads((paths.results / "tiny" / "runs" / f"{slug_}__s1__e1{tag}.json")
                            .read_text())
        assert record["trainer"]["lr"] == chosen[label]
        assert record["fingerprint"]["code"] == "1" * 16
    # a tuning run made for another setting still holds the later seeds back
    first = paths.results / "tiny" / "runs" / "fno__s0__e1.json"
    record = json.loads(first.read_text())
    record["fingerprint"]["config"] = "f" * 16
    first.write_text(json.dumps(record))
    for path in (paths.results / "tiny" / "runs").glob("*__s1__*.json"):
        path.unlink()
    messages = []
    deferred = runner.run_study(spec, paths, seeds=[1], log=messages.append)
    assert deferred["ran"] == [] and "FNO" in deferred["deferred"]
    assert any("waiting for the tuning runs" in m for m in messages)


def test_results_section_is_spliced_into_the_project_readme(tmp_path):
    """The README's Results section is the harness's own file between two markers, with its
    links made relative to the README; a README without markers is left alone."""
    from benchmarks.accuracy.report import README_BEGIN, README_END, splice_readme

    results = tmp_path / "benchmarks" / "results" / "accuracy"
    results.mkdir(parents=True)
    section = results / "README.md"
    section.write_text("## Results\n\n| a | 0.12 |\n\n![swe](swe/rollout.png) "
                       "[full](swe/summary.md) [site](https://x.org/a)\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# P\n\nintro\n\n{README_BEGIN}\nold table\n{README_END}\n\n## Layout\n")
    assert splice_readme(section, readme)
    text = readme.read_text()
    assert "old table" not in text and "| a | 0.12 |" in text
    assert "](benchmarks/results/accuracy/swe/rollout.png)" in text
    assert "](benchmarks/results/accuracy/swe/summary.md)" in text
    assert "](https://x.org/a)" in text
    assert text.startswith("# P\n\nintro\n\n") and text.endswith(f"{README_END}\n\n## Layout\n")
    assert splice_readme(section, readme) and readme.read_text() == text  # idempotent
    plain = tmp_path / "PLAIN.md"
    plain.write_text("# no markers\n")
    assert not splice_readme(section, plain) and plain.read_text() == "# no markers\n"

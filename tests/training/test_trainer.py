"""Trainer: learning, metric files, schedules, exact resume after SIGKILL/SIGTERM, NaN stop."""

import functools
import importlib.util
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from geo_neuralop.geometry import GridSpec, PointQuadrature, jittered_rectangle_mesh
from geo_neuralop.training import LpLoss, Trainer, TrainerConfig, error_metrics, lp_error
from geo_neuralop.training.checkpointing import load_checkpoint
from geo_neuralop.training.metrics import read_jsonl
from geo_neuralop.training.trainer import NonFiniteLossError


def uniform_points(n):
    """The quadrature of a batch of ``n`` rows treated as one cloud with weights 1/n."""
    return PointQuadrature(torch.full((n,), 1.0 / n))


def build_run(out_dir):
    """A small periodic 1D operator-learning problem with dropout, warm-up, cosine and clipping."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(123)
    x = torch.randn(40, 2, 16, generator=g)
    y = torch.stack([x[:, 0] - x[:, 1].roll(1, -1), x[:, 0] * x[:, 1]], 1)
    model = nn.Sequential(nn.Conv1d(2, 16, 3, padding=1, padding_mode="circular"),
                          nn.GELU(), nn.Dropout(0.2),
                          nn.Conv1d(16, 2, 3, padding=1, padding_mode="circular"))
    cfg = TrainerConfig(epochs=3, batch_size=4, lr=3e-3, scheduler="cosine", warmup_steps=3,
                        grad_clip=1.0, checkpoint_every_steps=5, out_dir=str(out_dir), seed=7,
                        progress=False)
    grid = GridSpec((16,), periodic=True)
    return Trainer(model, TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:]),
                   LpLoss(quadrature=grid), cfg,
                   metric_fn=functools.partial(error_metrics, quadrature=grid))


def _child(mode, out_dir, at):
    """Body of the killed process (forked, so it skips the interpreter and import start-up)."""
    torch.set_num_threads(1)
    trainer = build_run(out_dir)

    def pause(tr, info):  # park after step `at` until the parent kills the process
        if info["global_step"] == at:
            Path(out_dir, "paused").write_text(str(at))
            time.sleep(120)

    def sigterm(tr, info):
        if info["global_step"] == at:
            os.kill(os.getpid(), signal.SIGTERM)

    def sigint(tr, info):  # Ctrl-C
        if info["global_step"] == at:
            os.kill(os.getpid(), signal.SIGINT)

    trainer.step_callbacks.append({"pause": pause, "sigterm": sigterm, "sigint": sigint}[mode])
    trainer.fit()


STEPS_PER_EPOCH = 8  # 32 samples, batch 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models: intra-op threads only add contention on a shared 2-core machine; the
    # killed child processes use one thread too, so all runs compute alike
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    history = build_run(out).fit()
    return out, history


def _start(mode, out_dir, at):
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(mode, out_dir, at))
    proc.start()
    return proc


def _losses(history):
    keys = [k for k in history[0] if "loss" in k or k.startswith("val_") or k == "lr"]
    return [r[k] for r in history for k in keys]


def _assert_same_run(out_a, history_a, out_b, history_b):
    assert [r["epoch"] for r in history_b] == [1, 2, 3]
    la, lb = _losses(history_a), _losses(history_b)
    assert la == pytest.approx(lb, rel=1e-6, abs=1e-9)
    a = load_checkpoint(Path(out_a, "checkpoints", "last.pt"))
    b = load_checkpoint(Path(out_b, "checkpoints", "last.pt"))
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 3 * STEPS_PER_EPOCH
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=1e-6, atol=1e-7)
    # the metric files were rebuilt from the checkpoint: no lost or repeated epochs
    assert _losses(read_jsonl(Path(out_b, "metrics.jsonl"))) == pytest.approx(lb)
    csv_rows = Path(out_b, "metrics.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 4 and csv_rows[0].startswith("epoch,global_step,lr,train_loss")
    return la == lb  # bitwise?


def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(reference_run, tmp_path):
    kill_at = STEPS_PER_EPOCH + 5  # epoch 2, step 5; last checkpoint at global step 10
    proc = _start("pause", tmp_path, kill_at)
    deadline = time.monotonic() + 90
    while not (tmp_path / "paused").exists():
        if not proc.is_alive() or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child did not reach step {kill_at} (exit code "
                                 f"{proc.exitcode})")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == 10
    assert state["progress"]["epoch"] == 1 and state["progress"]["step_in_epoch"] == 2
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1

    history = build_run(tmp_path).fit(resume=True)
    ref_out, ref_history = reference_run
    bitwise = _assert_same_run(ref_out, ref_history, tmp_path, history)
    assert bitwise, "resumed run differs from the uninterrupted one (not bitwise)"


def test_sigterm_writes_a_checkpoint_and_resume_matches(reference_run, tmp_path, caplog):
    stop_at = STEPS_PER_EPOCH + 3
    proc = _start("sigterm", tmp_path, stop_at)
    proc.join(timeout=120)
    assert proc.exitcode == 128 + signal.SIGTERM
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == stop_at  # the step in progress was finished
    history = build_run(tmp_path).fit(resume=True)
    ref_out, ref_history = reference_run
    assert _assert_same_run(ref_out, ref_history, tmp_path, history)


def test_ctrl_c_writes_a_checkpoint_exits_130_and_resume_matches(reference_run, tmp_path):
    """T37: Ctrl-C (SIGINT) gave a KeyboardInterrupt traceback and no checkpoint; now it is
    handled as SIGTERM is: the step in progress is finished, a checkpoint written, exit 130."""
    stop_at = STEPS_PER_EPOCH + 3
    proc = _start("sigint", tmp_path, stop_at)
    proc.join(timeout=120)
    assert proc.exitcode == 128 + signal.SIGINT == 130
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == stop_at
    history = build_run(tmp_path).fit(resume=True)
    ref_out, ref_history = reference_run
    assert _assert_same_run(ref_out, ref_history, tmp_path, history)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    data = TensorDataset(x, x @ torch.randn(3, 2))
    base = LpLoss(quadrature=uniform_points(4))
    calls = {"n": 0}

    def loss(pred, target, **kw):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 6:
                return base(pred, target, **kw) * float("nan")
        return base(pred, target, **kw)

    cfg = TrainerConfig(epochs=3, batch_size=4, checkpoint_every_steps=3, out_dir=str(tmp_path),
                        progress=False)
    snapshots = {}

    def snapshot(tr, info):
        snapshots[info["global_step"]] = {k: v.clone() for k, v in tr.model.state_dict().items()}

    trainer = Trainer(nn.Linear(3, 2), data, data, loss, cfg, step_callbacks=[snapshot])
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2 of 4 \(global step 6\)") as exc:
        trainer.fit()
    assert str(tmp_path / "checkpoints" / "last.pt") in str(exc.value)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == 4  # the epoch-end checkpoint after step 4
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())
    # the bad step made no update: the model is as after step 5
    assert max(snapshots) == 5
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, snapshots[5][name])
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1]


def test_trainer_learns_and_writes_metric_files(tmp_path):
    # channel mixing y = A x of fields on a 1D grid [B, C, n], learnable exactly
    torch.manual_seed(0)
    a = torch.randn(3, 4)
    x = torch.randn(96, 4, 8)
    y = torch.einsum("oc,bcn->bon", a, x)
    train, val = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])
    cfg = TrainerConfig(epochs=15, batch_size=16, lr=0.1, weight_decay=0.0, out_dir=str(tmp_path),
                        progress=False)
    grid = GridSpec((8,))
    trainer = Trainer(nn.Conv1d(4, 3, 1), train, val, LpLoss(quadrature=grid), config=cfg,
                      metric_fn=functools.partial(error_metrics, quadrature=grid))
    before = trainer.evaluate()["loss"]
    history = trainer.fit()
    assert history[-1]["val_loss"] < 0.01 < 0.5 < before
    # per-sample relative L2 (the loss) equals the metric of the same name
    assert history[-1]["val_rel_l2"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)
    assert read_jsonl(tmp_path / "metrics.jsonl") == history
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "val_rel_l2/0", "samples_per_s"} <= set(header)
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["best_val"] == min(r["val_loss"] for r in history)
    with pytest.raises(ValueError, match="resume=True"):
        Trainer(nn.Conv1d(4, 3, 1), train, val, LpLoss(quadrature=grid), config=cfg).fit()


def test_pyg_batches_of_different_meshes(tmp_path):
    # pointwise map u -> [u^2, 2u] on meshes of different sizes; the loss is the mean of the
    # per-graph relative errors, and evaluate() reproduces that number
    clouds = []
    for i, n in enumerate((6, 8, 10, 7, 9, 11, 6, 8)):
        mesh = jittered_rectangle_mesh((n, n), seed=i)
        u = torch.sin(3 * mesh.pos[:, :1] + i)
        mesh.x, mesh.y = u, torch.cat([u**2, 2 * u], dim=1)
        clouds.append(mesh)
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 2))
    cfg = TrainerConfig(epochs=30, batch_size=4, lr=1e-2, out_dir=str(tmp_path), progress=False)
    trainer = Trainer(model, clouds[:6], clouds[6:], LpLoss(), cfg,
                      forward_fn=lambda m, batch: m(batch.x))
    history = trainer.fit()
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    with torch.no_grad():
        manual = sum(lp_error(model(c.x), c.y, c) for c in clouds[6:]) / 2
    assert trainer.evaluate()["loss"] == pytest.approx(manual.item(), rel=1e-5)


def test_learning_rate_schedules(tmp_path):
    x = torch.randn(12, 2)
    data = TensorDataset(x, x)
    seen = []

    def record(trainer, info):
        seen.append(trainer.optimizer.param_groups[0]["lr"])

    cfg = TrainerConfig(epochs=2, batch_size=4, lr=1.0, scheduler="cosine", warmup_steps=2,
                        min_lr_ratio=0.1, out_dir=str(tmp_path / "c"), progress=False)
    Trainer(nn.Linear(2, 2), data, loss=LpLoss(quadrature=uniform_points(4)), config=cfg,
            step_callbacks=[record]).fit()
    # lr used at step s (0-based) is factor(s); recorded after the step, i.e. factor(s + 1)
    total = 6 - 2

    def cosine(s):
        warm = min(1.0, (s + 1) / 2)
        p = min(1.0, max(0, s - 2) / total)
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    assert seen == pytest.approx([cosine(s + 1) for s in range(6)])
    seen.clear()
    cfg = TrainerConfig(epochs=4, batch_size=4, lr=1.0, scheduler="step", step_size=2,
                        gamma=0.5, out_dir=str(tmp_path / "s"), progress=False)
    Trainer(nn.Linear(2, 2), data, loss=LpLoss(quadrature=uniform_points(4)), config=cfg,
            step_callbacks=[record]).fit()
    assert seen == pytest.approx([1.0 * 0.5 ** (((s + 1) // 3) // 2) for s in range(12)])


def test_config_validation_names_the_key():
    cfg = TrainerConfig.from_dict({"epochs": 2, "lr": 1e-3, "scheduler": "none"})
    assert cfg.epochs == 2 and TrainerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"train\.epoch: unknown key"):
        TrainerConfig.from_dict({"epoch": 2}, path="train")
    with pytest.raises(ValueError, match=r"trainer\.lr: must be a positive number, got '1e-3'"):
        TrainerConfig.from_dict({"lr": "1e-3"})
    with pytest.raises(ValueError, match=r"trainer\.scheduler: must be one of"):
        TrainerConfig.from_dict({"scheduler": "linear"})
    with pytest.raises(ValueError, match=r"TrainerConfig\.batch_size"):
        TrainerConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"trainer\.amp"):
        TrainerConfig.from_dict({"amp": True})
    with pytest.raises(TypeError, match="mapping"):
        TrainerConfig.from_dict([("epochs", 1)])


def test_bad_trainer_inputs_and_cpu_amp_warning(tmp_path):
    data = TensorDataset(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer(lambda x: x, data)
    with pytest.raises(ValueError, match="empty"):
        Trainer(nn.Linear(2, 2), TensorDataset(torch.zeros(0, 2), torch.zeros(0, 2)))
    cfg = TrainerConfig(epochs=1, batch_size=2, amp="bf16", device="cpu", out_dir=str(tmp_path),
                        progress=False)
    loss = LpLoss(quadrature=uniform_points(2))
    with pytest.warns(UserWarning, match="only on CUDA"):
        Trainer(nn.Linear(2, 2), data, loss=loss, config=cfg).fit()
    if importlib.util.find_spec("tensorboard") is None:
        cfg = TrainerConfig(epochs=1, batch_size=2, tensorboard=True, out_dir=str(tmp_path / "t"),
                            progress=False)
        with pytest.warns(UserWarning, match="tensorboard package is not installed"):
            Trainer(nn.Linear(2, 2), data, loss=loss, config=cfg).fit()
    odd = TensorDataset(torch.randn(4, 2))  # one tensor per sample: no target
    with pytest.raises(TypeError, match="batch_fn"):
        Trainer(nn.Linear(2, 2), odd, config=TrainerConfig(out_dir=str(tmp_path / "o"),
                                                           progress=False)).fit()
    # tuple batches give no quadrature: the default loss has none of its own
    cfg = TrainerConfig(epochs=1, batch_size=2, out_dir=str(tmp_path / "q"), progress=False)
    with pytest.raises(ValueError, match="needs a quadrature"):
        Trainer(nn.Linear(2, 2), data, config=cfg).fit()
    # a bare weights tensor is no longer a quadrature
    cfg = TrainerConfig(epochs=1, batch_size=2, out_dir=str(tmp_path / "w"), progress=False)
    with pytest.raises(TypeError, match="third value"):
        Trainer(nn.Linear(2, 2), data, config=cfg,
                batch_fn=lambda b: (b[0], b[1], torch.full((2,), 0.5))).fit()

"""Trainer recipes: gradient accumulation equals the full batch, torch.compile trains like eager,
rollout losses and the pushforward gradient equal hand computations, the weight average follows
its recursion, fine-tuning freezes what it should, and all of it resumes exactly."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from geo_neuralop.training import Trainer, TrainerConfig
from geo_neuralop.training.recipes import WeightEMA, freeze_except, micro_batches


def _data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [2.0], [-1.0]], dtype=torch.float64) + 0.1 * torch.randn(
        n, 1, generator=g, dtype=torch.float64)
    return TensorDataset(x, y)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def _cfg(tmp_path, name, **extra):
    base = {"epochs": 2, "batch_size": 8, "lr": 1e-2, "out_dir": str(tmp_path / name),
            "progress": False, "device": "cpu", "scheduler": "none"}
    return TrainerConfig(**{**base, **extra})


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("drop_last", [False, True])
def test_gradient_accumulation_equals_the_full_batch(tmp_path, drop_last):
    """20 samples, batches 8/8/4: micro-batches of 2 weighted by size give the same steps."""
    runs = {}
    for accum in (1, 4):
        model = _mlp()
        trainer = Trainer(model, _data(), loss=nn.MSELoss(),
                          config=_cfg(tmp_path, f"a{accum}{drop_last}", drop_last=drop_last,
                                      grad_accumulation_steps=accum))
        history = trainer.fit()
        runs[accum] = (_params(model), [r["train_loss"] for r in history], trainer.global_step)
    assert runs[1][2] == runs[4][2] == (4 if drop_last else 6)
    assert (runs[1][0] - runs[4][0]).abs().max() < 1e-12
    assert runs[1][1] == pytest.approx(runs[4][1], rel=1e-12)


def test_micro_batch_grouping():
    assert [len(g) for g in micro_batches(range(7), 3, False)] == [3, 3, 1]
    assert [len(g) for g in micro_batches(range(7), 3, True)] == [3, 3]


def test_accumulation_must_divide_the_batch(tmp_path):
    trainer = Trainer(_mlp(), _data(), loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "bad", grad_accumulation_steps=3))
    with pytest.raises(ValueError, match="grad_accumulation_steps: 3 must divide"):
        trainer.fit()


class _Sequences(Dataset):
    """x_0 and the next three states of x_{t+1} = A x_t + b (targets [T=3, C, n])."""

    def __init__(self, n=12):
        g = torch.Generator().manual_seed(1)
        self.a = 0.9 * torch.eye(2, dtype=torch.float64) + 0.05 * torch.randn(
            2, 2, generator=g, dtype=torch.float64)
        self.x = torch.randn(n, 2, 5, generator=g, dtype=torch.float64)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        frames, state = [], self.x[i]
        for _ in range(3):
            state = torch.einsum("oc,cn->on", self.a, state) + 0.1
            frames.append(state)
        return self.x[i], torch.stack(frames)


def _conv_model():
    torch.manual_seed(0)
    return nn.Conv1d(2, 2, 3, padding=1, padding_mode="circular").double()


@pytest.mark.parametrize("pushforward", [False, True])
def test_rollout_loss_and_gradient_equal_the_hand_computation(tmp_path, pushforward):
    model = _conv_model()
    data = _Sequences()
    trainer = Trainer(model, data, loss=nn.MSELoss(),
                      config=_cfg(tmp_path, f"r{pushforward}", rollout_steps=3,
                                  pushforward=pushforward))
    trainer._setup()
    x, y = (torch.stack(v) for v in zip(*[data[i] for i in range(4)], strict=True))
    loss = trainer._batch_loss(model, x, y, {})
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref_model = copy.deepcopy(model)
    s1 = ref_model(x)
    s2 = ref_model(s1.detach() if pushforward else s1)
    s3 = ref_model(s2.detach() if pushforward else s2)
    mse = nn.functional.mse_loss
    ref = mse(s3, y[:, 2]) if pushforward else (mse(s1, y[:, 0]) + mse(s2, y[:, 1])
                                                + mse(s3, y[:, 2])) / 3
    ref_grads = torch.autograd.grad(ref, list(ref_model.parameters()))
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-13)
    for a, b in zip(grads, ref_grads, strict=True):
        assert (a - b).abs().max() < 1e-13 * b.abs().max()


def test_rollout_training_needs_frames_and_pushforward_needs_a_rollout(tmp_path):
    short = TensorDataset(torch.randn(8, 2, 5).double(), torch.randn(8, 2, 5).double())
    trainer = Trainer(_conv_model(), short, loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "s", rollout_steps=3))
    with pytest.raises(ValueError, match="rollout_steps=3 needs targets with 3 frames"):
        trainer.fit()
    trainer = Trainer(_conv_model(), short, loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "p", pushforward=True))
    with pytest.raises(ValueError, match="pushforward: needs rollout_steps > 1"):
        trainer.fit()
    flat = TensorDataset(torch.randn(8, 10).double(), torch.randn(8, 2, 3).double())
    trainer = Trainer(nn.Linear(10, 3).double(), flat, loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "n", rollout_steps=2))
    with pytest.raises(TypeError, match="next_input_fn"):
        trainer.fit()


def test_weight_average_follows_its_recursion_and_is_used_for_validation(tmp_path):
    model = _mlp()
    history_params = []
    trainer = Trainer(model, _data(), _data(8, seed=3), loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "ema", ema_decay=0.8),
                      step_callbacks=[lambda tr, info: history_params.append(
                          {k: v.clone() for k, v in tr.model.state_dict().items()})])
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    records = trainer.fit()
    expected = initial
    for state in history_params:
        expected = {k: 0.8 * expected[k] + 0.2 * state[k] for k in expected}
    for k, v in expected.items():
        assert (trainer.ema.state[k] - v).abs().max() < 1e-12, k
        assert (model.state_dict()[k] - v).abs().max() < 1e-12  # the model holds the average
    x, y = _data(8, seed=3).tensors
    val = float(nn.functional.mse_loss(model(x), y))
    assert records[-1]["val_loss"] == pytest.approx(val, rel=1e-12)
    ema = WeightEMA(nn.Linear(2, 2), 0.5)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(nn.Linear(2, 2), 1.0)
    assert set(ema.state_dict()["state"]) == {"weight", "bias"}


def test_recipes_resume_exactly_mid_epoch(tmp_path):
    """Accumulation, a 2-step rollout and the weight average, stopped after step 3 of 2 x 3."""
    def build(name):
        return Trainer(_conv_model(), _Sequences(), loss=nn.MSELoss(),
                       config=_cfg(tmp_path, name, batch_size=4, grad_accumulation_steps=2,
                                   rollout_steps=2, ema_decay=0.9, checkpoint_every_steps=1,
                                   shuffle=True, scheduler="cosine"))
    full = build("full")
    full.fit()
    part = build("part")
    part.step_callbacks.append(lambda tr, info: tr.request_stop()
                               if info["global_step"] == 3 else None)
    with pytest.raises(SystemExit):
        part.fit()
    resumed = build("part")
    resumed.fit(resume=True)
    assert torch.equal(_params(resumed.model), _params(full.model))
    for k, v in full.ema.state.items():
        assert torch.equal(resumed.ema.state[k], v)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]


def test_fine_tuning_freezes_all_but_the_trainable_parameters(tmp_path):
    from geo_neuralop.models import FNO, save_model

    torch.manual_seed(0)
    base = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=3)
    save_model(base, tmp_path / "base.pt")
    model = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=3)  # other initial weights
    x = torch.randn(8, 1, 8, 8)
    data = TensorDataset(x, x.roll(1, -1))
    trainer = Trainer(model, data, loss=nn.MSELoss(),
                      config=_cfg(tmp_path, "ft", epochs=1, batch_size=4,
                                  init_from=str(tmp_path / "base.pt"), trainable=["last_block"]))
    trainer.fit()
    changed = {k for k, v in model.state_dict().items()
               if not torch.equal(v, base.state_dict()[k])}
    assert changed and all(k.startswith("blocks.2.") for k in changed), changed
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if not n.startswith("blocks.2."))
    with pytest.raises(ValueError, match="trainer.trainable: pattern 'decoder.*' matches no"):
        freeze_except(model, ["decoder.*"])
    with pytest.raises(ValueError, match="'last_block' needs a model with a 'blocks' list"):
        freeze_except(nn.Linear(2, 2), ["last_block"])
    other = Trainer(FNO(1, 1, n_modes=(4, 4), hidden_channels=8, n_layers=3), data,
                    loss=nn.MSELoss(),
                    config=_cfg(tmp_path, "ft2", init_from=str(tmp_path / "base.pt")))
    with pytest.raises(ValueError, match="trainer.init_from: the weights"):
        other.fit()


@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_training_matches_eager(tmp_path, backend):
    histories = []
    for compiled in (False, True):
        model = _mlp()
        trainer = Trainer(model, _data(), loss=nn.MSELoss(),
                          config=_cfg(tmp_path, f"c{compiled}{backend}", compile=compiled,
                                      compile_backend=backend))
        histories.append(([r["train_loss"] for r in trainer.fit()], _params(model)))
        if compiled:
            state = torch.load(trainer.checkpoints.last_path, weights_only=True)["model"]
            assert not any(k.startswith("_orig_mod") for k in state)
    assert histories[0][0] == pytest.approx(histories[1][0], rel=1e-9)
    assert (histories[0][1] - histories[1][1]).abs().max() < 1e-9


def test_adapters_shift_frames_for_the_next_rollout_step():
    """Input [frame t-1, frame t, static]: the next input is [frame t, prediction, static]."""
    from torch_geometric.data import Batch

    from geo_neuralop.geometry import jittered_rectangle_mesh
    from geo_neuralop.training.adapters import DataSpec, make_adapter

    spec = DataSpec(family="grid", kind="rollout", inputs=["u", "v"], targets=["u", "v"],
                    input_steps=2, conditioning_names=["re"], conditioning_mean=[0.0],
                    conditioning_std=[1.0],
                    geometry={"kind": "regular", "dim": 2, "shape": [4, 4],
                              "domain": [[0.0, 1.0], [0.0, 1.0]], "periodic": [True, True]})
    x = torch.arange(5.0)[None, :, None, None].expand(2, 5, 4, 4)  # channels 0..4
    pred = torch.full((2, 2, 4, 4), 9.0)
    nxt = make_adapter(spec).next_input(x, pred)
    assert nxt[0, :, 0, 0].tolist() == [2.0, 3.0, 9.0, 9.0, 4.0]
    spec.family, spec.geometry = "mesh", {"kind": "mesh", "dim": 2}
    meshes = [jittered_rectangle_mesh((4, 3), seed=i) for i in range(2)]
    for m in meshes:
        m.x = torch.arange(5.0).expand(m.num_nodes, 5)
    batch = Batch.from_data_list(meshes)
    nxt = make_adapter(spec).next_input(batch, torch.full((24, 2), 9.0))
    assert nxt.x[0].tolist() == [2.0, 3.0, 9.0, 9.0, 4.0]
    assert batch.x[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # the batch itself is unchanged
    assert nxt.num_graphs == 2 and torch.equal(nxt.pos, batch.pos)

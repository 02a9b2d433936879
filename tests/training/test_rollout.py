"""Rollouts: error versus horizon, teacher forcing, forcing channels, stability, persistence."""

import json
import math

import pytest
import torch

from geo_neuralop.geometry import GridSpec, jittered_rectangle_mesh
from geo_neuralop.training import lp_error, rollout


def _decay_problem(a_true=0.9, steps=6):
    x = torch.linspace(0, 2 * math.pi, 33)[:-1]
    x0 = torch.stack([torch.sin(x), torch.cos(2 * x)])[None]  # [B=1, C=2, 32], periodic grid
    truth = torch.stack([x0 * a_true**t for t in range(1, steps + 1)])
    return x0, truth


def test_error_versus_horizon_of_a_linear_model_is_exact(float64):
    # truth x_t = a^t x0, model x_{t+1} = b x_t: rel L2 at step t = |b^t - a^t| / a^t,
    # persistence (x0 held) = |1 - a^t| / a^t
    a, b, steps = 0.9, 0.95, 6
    x0, truth = _decay_problem(a, steps)
    res = rollout(lambda x: b * x, x0, targets=truth, channel_dim=1,
                  quadrature=GridSpec((32,), periodic=True))
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    torch.testing.assert_close(res.errors["rel_l2"], (b**t - a**t).abs() / a**t)
    torch.testing.assert_close(res.errors["rel_l2/1"], (b**t - a**t).abs() / a**t)
    torch.testing.assert_close(res.persistence_errors["rel_l2"], (1 - a**t).abs() / a**t)
    assert res.stable and res.failure_step is None and res.steps_completed == steps
    assert res.predictions.shape == (steps, *x0.shape)
    torch.testing.assert_close(res.predictions[-1], b**steps * x0)
    # the model beats persistence at every horizon
    assert bool((res.errors["rel_l2"] < res.persistence_errors["rel_l2"]).all())
    json.dumps(res.to_dict())


def test_teacher_forcing_gives_one_step_errors(float64):
    a, b, steps = 0.9, 0.95, 5
    x0, truth = _decay_problem(a, steps)
    res = rollout(lambda x: b * x, x0, targets=truth, channel_dim=1, teacher_steps=steps,
                  quadrature=GridSpec((32,), periodic=True))
    torch.testing.assert_close(res.errors["rel_l2"], torch.full((steps,), abs(b / a - 1)))
    # persistence from the true previous state: |1 - a| / a at every step
    torch.testing.assert_close(res.persistence_errors["rel_l2"],
                               torch.full((steps,), (1 - a) / a))
    # two teacher steps, then free running: step t > 2 has error |b^(t-1) / a^(t-1) - 1|
    res2 = rollout(lambda x: b * x, x0, targets=truth, channel_dim=1, teacher_steps=2,
                   quadrature=GridSpec((32,), periodic=True))
    expected = [abs(b / a - 1)] * 2 + [abs((b / a) ** (t - 1) - 1) for t in range(3, 6)]
    torch.testing.assert_close(res2.errors["rel_l2"], torch.tensor(expected))
    # the last true state given was x_1, so persistence from step 2 on holds x_1
    pers = [(1 - a) / a] + [abs(1 - a ** (t - 1)) / a ** (t - 1) for t in range(2, 6)]
    torch.testing.assert_close(res2.persistence_errors["rel_l2"], torch.tensor(pers))


def test_forcing_channels_on_a_point_cloud(float64):
    # x_{t+1} = x_t + f_t on a mesh, f_t known: the model receives [x_t, f_t] along channels
    mesh = jittered_rectangle_mesh((9, 9), seed=3)
    x, y = mesh.pos.T
    x0 = torch.stack([torch.sin(x), y], dim=1)  # [N, 2]
    steps = 4
    forcing = torch.stack([0.1 * t * torch.cos(x + y)[:, None].expand(-1, 2)
                           for t in range(steps)])  # [T, N, 2]
    truth, state = [], x0
    for t in range(steps):
        state = state + forcing[t]
        truth.append(state)
    calls = []

    def step(inp):
        calls.append(inp.shape)
        return inp[:, :2] + inp[:, 2:]

    res = rollout(step, x0, targets=torch.stack(truth), forcing=forcing,
                  quadrature=mesh)
    assert calls == [(mesh.num_nodes, 4)] * steps
    assert float(res.errors["rel_l2"].abs().max()) < 1e-14
    # a model that ignores the forcing has the persistence error
    lazy = rollout(lambda inp: inp[:, :2], x0, targets=torch.stack(truth), forcing=forcing,
                   quadrature=mesh)
    torch.testing.assert_close(lazy.errors["rel_l2"], lazy.persistence_errors["rel_l2"])
    torch.testing.assert_close(
        lazy.errors["rel_l2"][-1], lp_error(x0, truth[-1], mesh).double())


def test_blow_up_is_detected_at_the_right_step(float64):
    x0, truth = _decay_problem(0.9, 8)
    res = rollout(lambda x: 10 * x, x0, targets=truth, channel_dim=1, blowup_factor=500.0,
                  quadrature=GridSpec((32,)))
    # max |x_t| = 10^t: 10^3 > 500 at step 3
    assert not res.stable
    assert res.failure_step == 3 and res.failure_reason.startswith("blow-up")
    assert res.steps_completed == 3 and res.predictions.shape[0] == 3
    assert math.isfinite(res.errors["rel_l2"][2]) and bool(res.errors["rel_l2"][3:].isnan().all())
    # persistence does not depend on the model and is complete
    assert bool(res.persistence_errors["rel_l2"].isfinite().all())
    # without stopping, all steps run and the first failure is still reported
    full = rollout(lambda x: 10 * x, x0, targets=truth, channel_dim=1, blowup_factor=500.0,
                   quadrature=GridSpec((32,)), stop_on_failure=False)
    assert full.failure_step == 3 and full.steps_completed == 8


def test_nan_is_detected_with_its_step():
    x0 = torch.ones(5, 1)
    count = {"n": 0}

    def step(x):
        count["n"] += 1
        return x * (float("nan") if count["n"] == 4 else 1.0)

    res = rollout(step, x0, num_steps=10, keep_predictions=False)
    assert res.failure_step == 4 and res.failure_reason == "non-finite"
    assert res.steps_completed == 4 and res.predictions is None and res.errors == {}
    assert res.to_dict()["failure_step"] == 4


def test_rollout_argument_errors():
    x0 = torch.ones(3, 2)
    with pytest.raises(ValueError, match="num_steps"):
        rollout(lambda x: x, x0)
    with pytest.raises(ValueError, match="teacher_steps"):
        rollout(lambda x: x, x0, num_steps=2, teacher_steps=1)
    with pytest.raises(ValueError, match="targets\\[0\\]"):
        rollout(lambda x: x, x0, targets=torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="step 1"):
        rollout(lambda x: x[:, :1], x0, num_steps=2)
    with pytest.raises(ValueError, match="forcing has 1 steps"):
        rollout(lambda x: x, x0, num_steps=2, forcing=torch.ones(1, 3, 1))
    with pytest.raises(ValueError, match="needs a quadrature"):
        rollout(lambda x: x, x0, targets=torch.ones(2, 3, 2))

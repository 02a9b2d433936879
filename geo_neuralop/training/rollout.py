"""Autoregressive rollouts: error versus horizon, stability, persistence baseline.

A time-stepping model maps a state to the next one, ``x_{t+1} = step(x_t)``.
:func:`rollout` applies it ``T`` times from ``x_0`` and, given the true states
``x_1 .. x_T``, reports at every step the same quadrature-weighted errors as
training and evaluation (:func:`geo_neuralop.training.metrics.error_metrics`),
together with the errors of the *persistence* forecast (the last true state the
model was given, held constant), the baseline a useful model must beat.

Options:

- ``forcing``: known inputs for each step (boundary data, time, static
  channels) concatenated to the state along ``channel_dim`` before each call;
  the model predicts only the state channels.
- ``teacher_steps = k``: the first ``k`` steps receive the true previous state
  (teacher forcing) instead of the model's own output; ``k = T`` gives one-step
  errors at every time.
- stability: after each step the state is checked; a NaN/inf value, or a
  maximum magnitude above ``blowup_factor`` times that of ``x_0``, marks the
  step as the failure step (1-based: step ``t`` produced ``x_t``). The rollout
  stops there (errors of later steps are NaN) unless ``stop_on_failure=False``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from geo_neuralop.training.metrics import error_metrics

StepFn = Callable[[torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], Mapping[str, Any]]


@dataclass
class RolloutResult:
    """Outcome of :func:`rollout`.

    Attributes
    ----------
    predictions : torch.Tensor or None, shape [T_done, *state]
        Predicted states ``x_1 ..`` up to the last completed step (detached), or
        None with ``keep_predictions=False``.
    errors : dict of str to torch.Tensor, each shape [T]
        Metric per step (mean over the samples of the state); NaN after a
        failure stop; empty without targets.
    persistence_errors : dict of str to torch.Tensor, each shape [T]
        The same metrics for the persistence forecast.
    num_steps : int
        Steps requested (``T``).
    steps_completed : int
        Steps actually taken.
    failure_step : int or None
        First step whose state was non-finite or blew up (1-based).
    failure_reason : str or None
        ``"non-finite"`` or ``"blow-up"`` with the offending magnitude.
    """

    predictions: torch.Tensor | None
    errors: dict[str, torch.Tensor]
    persistence_errors: dict[str, torch.Tensor]
    num_steps: int
    steps_completed: int
    failure_step: int | None = None
    failure_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        """True when no step failed."""
        return self.failure_step is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: stability and per-step error lists (NaN as None)."""

        def clean(values: torch.Tensor) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values.tolist()]

        return {
            "num_steps": self.num_steps,
            "steps_completed": self.steps_completed,
            "stable": self.stable,
            "failure_step": self.failure_step,
            "failure_reason": self.failure_reason,
            "errors": {k: clean(v) for k, v in self.errors.items()},
            "persistence_errors": {k: clean(v) for k, v in self.persistence_errors.items()},
        }


def _as_sequence(values: torch.Tensor | Sequence[torch.Tensor] | None, name: str
                 ) -> Sequence[torch.Tensor] | None:
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        if values.dim() < 1:
            raise ValueError(f"{name} must have a leading time axis, got a scalar")
        return list(values.unbind(0))
    values = list(values)
    for t, v in enumerate(values):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name}[{t}] must be a tensor, got {type(v).__name__}")
    return values


def _mean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            out[name] = float(value.detach().to(torch.float64).mean())
        else:
            out[name] = float(value)
    return out


def rollout(
    step_fn: StepFn,
    initial_state: torch.Tensor,
    num_steps: int | None = None,
    *,
    targets: torch.Tensor | Sequence[torch.Tensor] | None = None,
    forcing: torch.Tensor | Sequence[torch.Tensor] | None = None,
    channel_dim: int = -1,
    teacher_steps: int = 0,
    metric_fn: MetricFn | None = None,
    quadrature: Any = None,
    blowup_factor: float | None = 1e3,
    stop_on_failure: bool = True,
    keep_predictions: bool = True,
    no_grad: bool = True,
) -> RolloutResult:
    """Run a step function autoregressively and measure error versus horizon.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(x) -> x_next``; ``x`` is the state, with the forcing channels
        appended along ``channel_dim`` when ``forcing`` is given; ``x_next`` has
        the state's shape. Wrap a model that needs more arguments in a lambda.
    initial_state : torch.Tensor
        ``x_0``, any shape (``[N, C]`` on a point cloud, ``[B, C, *spatial]`` on
        a grid).
    num_steps : int, optional
        ``T``; default ``len(targets)``.
    targets : torch.Tensor or sequence of torch.Tensor, optional
        True states ``x_1 .. x_T`` (``[T, *state]``); needed for errors and for
        teacher forcing.
    forcing : torch.Tensor or sequence of torch.Tensor, optional
        ``[T, *forcing]``: ``forcing[t]`` is appended to the input of the step
        that produces ``x_{t+1}``.
    channel_dim : int
        Channel axis of the state (-1 for ``[N, C]``; 1 for ``[B, C, ...]``).
    teacher_steps : int
        Number of leading steps fed with the true previous state.
    metric_fn : callable, optional
        ``metric_fn(pred, target) -> {name: value or per-sample tensor}``;
        default :func:`error_metrics` with ``quadrature``, averaged over samples.
    quadrature : optional
        How the default metric integrates the state (a
        :class:`~geo_neuralop.geometry.Quadrature`, point cloud or batch,
        :class:`~geo_neuralop.geometry.GridSpec` or ``SphereGridSpec``); needed
        with ``targets`` unless ``metric_fn`` is given.
    blowup_factor : float or None
        Failure when ``max |x_t| > blowup_factor * max |x_0|``; None disables.
    stop_on_failure : bool
        Stop at the first failure (default) or run all steps.
    keep_predictions : bool
        Return the predicted states.
    no_grad : bool
        Run under ``torch.no_grad()`` (default).

    Returns
    -------
    RolloutResult

    Examples
    --------
    >>> import torch
    >>> x0 = torch.ones(1, 1, 8)                     # [B, C, n] on a periodic grid
    >>> truth = torch.stack([x0 * 0.9**t for t in range(1, 4)])
    >>> from geo_neuralop.geometry import GridSpec
    >>> res = rollout(lambda x: 0.9 * x, x0, targets=truth, channel_dim=1,
    ...               quadrature=GridSpec((8,), periodic=True))
    >>> res.stable, [round(v, 3) for v in res.errors["rel_l2"].tolist()]
    (True, [0.0, 0.0, 0.0])
    >>> [round(v, 3) for v in res.persistence_errors["rel_l2"].tolist()]  # |1 - 0.9^t| / 0.9^t
    [0.111, 0.235, 0.372]
    """
    if not isinstance(initial_state, torch.Tensor):
        raise TypeError(f"initial_state must be a tensor, got {type(initial_state).__name__}")
    target_seq = _as_sequence(targets, "targets")
    forcing_seq = _as_sequence(forcing, "forcing")
    if num_steps is None:
        if target_seq is None:
            raise ValueError("num_steps is required when no targets are given")
        num_steps = len(target_seq)
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if target_seq is not None:
        if len(target_seq) < num_steps:
            raise ValueError(f"targets has {len(target_seq)} steps but num_steps={num_steps}")
        for t in range(num_steps):
            if target_seq[t].shape != initial_state.shape:
                raise ValueError(f"targets[{t}] has shape {tuple(target_seq[t].shape)} but the "
                                 f"state has shape {tuple(initial_state.shape)}")
    if forcing_seq is not None and len(forcing_seq) < num_steps:
        raise ValueError(f"forcing has {len(forcing_seq)} steps but num_steps={num_steps}")
    if not 0 <= teacher_steps <= num_steps:
        raise ValueError(f"teacher_steps must be in [0, {num_steps}], got {teacher_steps}")
    if teacher_steps > 0 and target_seq is None:
        raise ValueError("teacher_steps > 0 needs targets (the true states fed to the model)")
    if blowup_factor is not None and not blowup_factor > 0:
        raise ValueError(f"blowup_factor must be positive or None, got {blowup_factor}")

    if target_seq is not None and metric_fn is None and quadrature is None:
        raise ValueError("rollout needs a quadrature (or a metric_fn) to measure errors "
                         "against targets")

    def measure(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        if metric_fn is not None:
            return _mean_metrics(metric_fn(pred, target))
        return _mean_metrics(error_metrics(pred, target, quadrature))

    def true_state(t: int) -> torch.Tensor:  # x_t, t >= 0
        return initial_state if t == 0 else target_seq[t - 1]  # type: ignore[index]

    scale = float(initial_state.detach().abs().max()) if initial_state.numel() else 0.0
    if not math.isfinite(scale):
        raise ValueError("initial_state contains NaN or inf values")
    limit = None if blowup_factor is None else blowup_factor * (scale if scale > 0 else 1.0)

    errors: dict[str, list[float]] = {}
    persistence: dict[str, list[float]] = {}
    predictions: list[torch.Tensor] = []
    failure_step: int | None = None
    failure_reason: str | None = None
    state = initial_state
    steps_completed = 0
    grad_ctx = torch.no_grad() if no_grad else torch.enable_grad()
    with grad_ctx:
        for t in range(1, num_steps + 1):
            model_input = true_state(t - 1) if t <= teacher_steps else state
            if forcing_seq is not None:
                model_input = torch.cat([model_input, forcing_seq[t - 1].to(model_input)],
                                        dim=channel_dim)
            nxt = step_fn(model_input)
            if not isinstance(nxt, torch.Tensor) or nxt.shape != initial_state.shape:
                got = tuple(nxt.shape) if isinstance(nxt, torch.Tensor) else type(nxt).__name__
                raise ValueError(f"step_fn returned {got} at step {t}; expected the state's "
                                 f"shape {tuple(initial_state.shape)}")
            state = nxt
            steps_completed = t
            if keep_predictions:
                predictions.append(state.detach())
            if target_seq is not None:
                for name, value in measure(state, target_seq[t - 1]).items():
                    errors.setdefault(name, [math.nan] * num_steps)[t - 1] = value
            if failure_step is None:
                magnitude = float(state.detach().abs().max()) if state.numel() else 0.0
                if not bool(torch.isfinite(state).all()):
                    failure_step, failure_reason = t, "non-finite"
                elif limit is not None and magnitude > limit:
                    failure_step = t
                    failure_reason = (f"blow-up: max |x| = {magnitude:.3g} > "
                                      f"{blowup_factor:g} * max |x_0| = {limit:.3g}")
                if failure_step is not None and stop_on_failure:
                    break
        if target_seq is not None:
            for t in range(1, num_steps + 1):
                # the last true state the model was given before producing x_t
                base = true_state(max(min(t, teacher_steps) - 1, 0))
                for name, value in measure(base, target_seq[t - 1]).items():
                    persistence.setdefault(name, [math.nan] * num_steps)[t - 1] = value

    def as_tensors(d: dict[str, list[float]]) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in d.items()}

    return RolloutResult(
        predictions=torch.stack(predictions) if keep_predictions and predictions else None,
        errors=as_tensors(errors),
        persistence_errors=as_tensors(persistence),
        num_steps=num_steps,
        steps_completed=steps_completed,
        failure_step=failure_step,
        failure_reason=failure_reason,
    )

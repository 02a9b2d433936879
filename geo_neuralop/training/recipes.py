"""Training recipes of the :class:`~geo_neuralop.training.Trainer`: weight averaging, fine-tuning
(initial weights, frozen parameters), micro-batches for gradient accumulation, and the next
input of an autoregressive rollout.

- :class:`WeightEMA`: an exponential moving average of a model's floating-point state,
  stored in checkpoints (exact resume) and swapped in for validation.
- :func:`freeze_except`: train only the parameters matching ``fnmatch`` patterns;
  ``"last_block"`` names the model's last entry of ``blocks`` (the Spectral-Refiner
  fine-tuning of Cao et al., ICLR 2025: all but the last spectral block frozen).
- :func:`initial_weights`: the weights of a model file or training checkpoint.
- :func:`micro_batches`: a DataLoader's batches grouped for gradient accumulation.
- :func:`default_next_input`: the next input of a rollout when the model maps its input
  space to itself.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["MicroBatches", "WeightEMA", "check_fine_tuning", "default_next_input",
           "freeze_except", "initial_weights", "micro_batches"]


class WeightEMA:
    """Exponential moving average of a model's floating-point parameters and buffers.

    ``ema = decay * ema + (1 - decay) * w`` at every :meth:`update`; integer buffers
    (counters) are copied.

    Parameters
    ----------
    model : nn.Module
        The model whose ``state_dict`` is averaged (unwrapped from DDP).
    decay : float
        In (0, 1).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = torch.nn.init.constant_(model.weight, 0.0)
    >>> ema = WeightEMA(model, decay=0.5)
    >>> _ = torch.nn.init.constant_(model.weight, 1.0)
    >>> ema.update(model); ema.update(model)
    >>> float(ema.state["weight"])  # 0 -> 0.5 -> 0.75
    0.75
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current weights."""
        for key, value in model.state_dict().items():
            avg = self.state[key]
            if avg.is_floating_point() or avg.is_complex():
                avg.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors on the CPU, for checkpoints."""
        return {"decay": self.decay, "state": {k: v.cpu() for k, v in self.state.items()}}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (tensors moved to the current average's devices)."""
        state = saved["state"]
        missing = sorted(set(self.state) - set(state))
        if missing:
            raise ValueError(f"the checkpoint's weight average lacks {missing}")
        self.state = {k: state[k].to(self.state[k].device) for k in self.state}

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Run a block with the averaged weights in ``model``, then restore its own."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(own)


def _expand(model: nn.Module, pattern: str) -> str:
    if pattern != "last_block":
        return pattern
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
        raise ValueError(f"trainer.trainable: 'last_block' needs a model with a 'blocks' list; "
                         f"{type(model).__name__} has none (name its parameters with patterns "
                         f"such as 'projection.*')")
    return f"blocks.{len(blocks) - 1}.*"


def freeze_except(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Set ``requires_grad = False`` on every parameter not matching a pattern.

    Parameters
    ----------
    model : nn.Module
    patterns : sequence of str
        ``fnmatch`` patterns of parameter names; ``"last_block"`` stands for
        ``"blocks.<n-1>.*"``.

    Returns
    -------
    list of str
        The names of the parameters left trainable.

    Raises
    ------
    ValueError
        Naming a pattern that matches no parameter (with a few parameter names).
    """
    names = [name for name, _ in model.named_parameters()]
    expanded = [_expand(model, p) for p in patterns]
    for raw, pattern in zip(patterns, expanded, strict=True):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(f"trainer.trainable: pattern {raw!r} matches no parameter of "
                             f"{type(model).__name__}; its parameters are named like "
                             f"{names[:4]} ... {names[-2:]}")
    kept = []
    for name, p in model.named_parameters():
        train = any(fnmatch.fnmatchcase(name, pattern) for pattern in expanded)
        p.requires_grad_(train)
        if train:
            kept.append(name)
    return kept


def check_fine_tuning(model: nn.Module, trainable: Sequence[str] | None,
                      init_from: str | os.PathLike | None) -> None:
    """Check ``trainer.trainable`` and ``trainer.init_from`` against a model, changing nothing.

    Raises
    ------
    ValueError
        Naming the setting: a pattern matching no parameter, a missing file, or
        weights whose names or shapes do not fit the model.
    """
    if trainable is not None:
        names = [name for name, _ in model.named_parameters()]
        for raw in trainable:
            pattern = _expand(model, raw)
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ValueError(f"trainer.trainable: pattern {raw!r} matches no parameter of "
                                 f"{type(model).__name__}; its parameters are named like "
                                 f"{names[:4]} ... {names[-2:]}")
    if init_from is not None:
        weights = initial_weights(init_from)
        own = model.state_dict()
        missing = sorted(set(own) - set(weights))
        unexpected = sorted(set(weights) - set(own))
        wrong = sorted(k for k in set(own) & set(weights)
                       if tuple(own[k].shape) != tuple(weights[k].shape))
        if missing or unexpected or wrong:
            raise ValueError(f"trainer.init_from: the weights in {str(init_from)!r} do not fit "
                             f"{type(model).__name__} (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}, other shapes {wrong[:3]}); fine-tune the same "
                             f"architecture")


def initial_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model weights in a model file (``save_model``) or a training checkpoint.

    A training checkpoint's weight average (``ema_model``) is preferred when present.

    Raises
    ------
    ValueError
        Naming ``trainer.init_from`` when the file is missing or holds no weights.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trainer.init_from: no file at {str(path)!r}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, Mapping):
        for key in ("ema_model", "model", "state_dict"):
            weights = payload.get(key)
            if isinstance(weights, Mapping):
                return dict(weights)
    raise ValueError(f"trainer.init_from: {str(path)!r} is neither a model file nor a training "
                     f"checkpoint (no 'model' or 'state_dict' weights)")


class MicroBatches(list):
    """The micro-batches of one optimizer step (a list of collated batches)."""


def micro_batches(loader: Iterable[Any], size: int, drop_last: bool) -> Iterator[MicroBatches]:
    """Group a loader's batches ``size`` at a time; the last, smaller group is kept unless
    ``drop_last``."""
    group = MicroBatches()
    for batch in loader:
        group.append(batch)
        if len(group) == size:
            yield group
            group = MicroBatches()
    if group and not drop_last:
        yield group


def default_next_input(inputs: Any, pred: torch.Tensor) -> Any:
    """The next input of a rollout step: the prediction itself (inputs and outputs alike).

    Raises
    ------
    TypeError
        When the prediction cannot be the next input (give the trainer a
        ``next_input_fn``, as the experiment's data adapters do).
    """
    if isinstance(inputs, torch.Tensor) and inputs.shape == pred.shape:
        return pred
    raise TypeError(f"rollout_steps > 1: the prediction {tuple(pred.shape)} cannot be the next "
                    f"input {getattr(inputs, 'shape', type(inputs).__name__)}; pass "
                    f"next_input_fn(inputs, pred) -> next inputs to the Trainer")

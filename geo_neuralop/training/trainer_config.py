"""``TrainerConfig``: the settings of the :class:`~geo_neuralop.training.Trainer`.

Every field is a plain YAML-able value; :meth:`TrainerConfig.from_dict` builds one
from a mapping and names the offending key (``trainer.lr: must be positive``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AMP_MODES", "COLLATES", "COMPILE_BACKENDS", "SCHEDULERS", "TrainerConfig"]

SCHEDULERS = ("cosine", "step", "none")
AMP_MODES = ("none", "bf16", "fp16")
COLLATES = ("auto", "default", "pyg")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")




def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class TrainerConfig:
    """Settings of :class:`Trainer`; every field is a plain YAML-able value.

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Global batch size (split evenly over the processes of a DDP job).
    eval_batch_size : int or None
        Batch size per process for evaluation (default ``batch_size``).
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW's decoupled weight decay.
    betas : list of float
        AdamW's moment coefficients.
    scheduler : {"cosine", "step", "none"}
        Learning-rate schedule, stepped after every optimizer step: cosine decay
        to ``min_lr_ratio * lr`` over all steps; ``gamma`` every ``step_size``
        epochs; or constant.
    warmup_steps : int
        Linear warm-up steps before the schedule (any scheduler).
    min_lr_ratio : float
        Floor of the cosine schedule, as a fraction of ``lr``.
    step_size : int
        Epochs between decays of the step schedule.
    gamma : float
        Decay factor of the step schedule.
    grad_clip : float or None
        Maximal global gradient norm (None or 0: no clipping).
    amp : {"none", "bf16", "fp16"}
        Mixed precision on CUDA (ignored with a warning on the CPU).
    checkpoint_every_steps : int
        Also checkpoint every this many optimizer steps (0: epoch ends only).
    out_dir : str
        Folder of checkpoints and metric files.
    seed : int
        Seed of torch/NumPy/Python RNGs at a fresh start and of the shuffling.
    num_workers : int
        DataLoader worker processes.
    collate : {"auto", "default", "pyg"} or callable
        How samples become a batch: torch's ``default_collate``, PyG's
        ``Batch.from_data_list`` (graphs of any size), or chosen from the
        first sample ("auto").
    shuffle : bool
        Shuffle the training set each epoch.
    drop_last : bool
        Drop the last incomplete batch.
    val_every_epochs : int
        Validate every this many epochs (and after the last one).
    device : str
        "auto" (CUDA if available), "cpu", "cuda" or "cuda:<i>".
    progress : bool
        Show tqdm progress bars (rank 0 only).
    tensorboard : bool
        Also log to TensorBoard (if the ``tensorboard`` package is installed).
    deterministic : bool
        ``torch.use_deterministic_algorithms(True, warn_only=True)``, for
        reproducible CUDA scatter operations.
    grad_accumulation_steps : int
        Micro-batches per optimizer step: each process's share of ``batch_size`` is
        split into this many micro-batches whose gradients are summed with weights
        ``n_micro / n_step``, so a step equals the full batch's (less memory).
    compile : bool
        Train the model through ``torch.compile`` (the checkpoints hold the plain
        model's weights; evaluation runs uncompiled).
    compile_backend : {"inductor", "aot_eager", "eager"}
        The ``torch.compile`` backend ("inductor" needs a C++ compiler on the CPU).
    rollout_steps : int
        Autoregressive training: the model is applied this many times, each step's
        input made from the previous prediction (the trainer's ``next_input_fn``),
        and the loss is the mean of the per-step losses against targets
        ``[B, rollout_steps, ...]`` (time on axis 1). 1: one-step training.
    pushforward : bool
        With ``rollout_steps > 1``: no gradient through the first steps, the loss on
        the last one only (the pushforward trick of Brandstetter et al., ICLR 2022).
    ema_decay : float or None
        Keep an exponential moving average of the weights,
        ``ema = decay * ema + (1 - decay) * w`` after every optimizer step; validation
        uses it, checkpoints store it, and the model holds it after :meth:`fit`.
    init_from : str or None
        At a fresh start, load the model weights from this model file (``model.pt``)
        or training checkpoint (its EMA weights if it has them): fine-tuning.
    trainable : list of str or None
        Train only the parameters whose names match one of these ``fnmatch``
        patterns (e.g. ``"blocks.3.*"``); ``"last_block"`` stands for the parameters
        of the model's last entry of ``blocks`` (the Spectral-Refiner recipe). The
        other parameters are frozen (``requires_grad = False``). None: all.
    """

    epochs: int = 10
    batch_size: int = 8
    eval_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    scheduler: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_size: int = 10
    gamma: float = 0.5
    grad_clip: float | None = None
    amp: str = "none"
    checkpoint_every_steps: int = 0
    out_dir: str = "runs/train"
    seed: int = 0
    num_workers: int = 0
    collate: Any = "auto"
    shuffle: bool = True
    drop_last: bool = False
    val_every_epochs: int = 1
    device: str = "auto"
    progress: bool = True
    tensorboard: bool = False
    deterministic: bool = False
    grad_accumulation_steps: int = 1
    compile: bool = False
    compile_backend: str = "inductor"
    rollout_steps: int = 1
    pushforward: bool = False
    ema_decay: float | None = None
    init_from: str | None = None
    trainable: list[str] | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f.name, getattr(self, f.name), "TrainerConfig")
        self.betas = [float(b) for b in self.betas]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "trainer") -> TrainerConfig:
        """Build from a mapping (e.g. a YAML section), naming bad keys by ``path``.

        Raises
        ------
        ValueError
            ``"<path>.<key>: ..."`` for unknown keys and bad values.
        TypeError
            If ``data`` is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"{path}.{key}: unknown key; known keys are {sorted(known)}")
        for key, value in data.items():
            _check_field(key, value, path)
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (a callable ``collate`` is stored as its qualified name)."""
        out = dataclasses.asdict(self)
        if callable(self.collate):
            out["collate"] = getattr(self.collate, "__qualname__", repr(self.collate))
        return out


def _check_field(name: str, value: Any, prefix: str) -> None:
    where = f"{prefix}.{name}"
    positive_ints = ("epochs", "batch_size", "step_size", "val_every_epochs",
                     "grad_accumulation_steps", "rollout_steps")
    nonneg_ints = ("warmup_steps", "checkpoint_every_steps", "seed", "num_workers")
    if name in positive_ints:
        if not _is_int(value) or value < 1:
            raise ValueError(f"{where}: must be a positive integer, got {value!r}")
    elif name in nonneg_ints:
        if not _is_int(value) or value < 0:
            raise ValueError(f"{where}: must be a non-negative integer, got {value!r}")
    elif name == "eval_batch_size":
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{where}: must be a positive integer or null, got {value!r}")
    elif name in ("lr", "gamma"):
        if not _is_number(value) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"{where}: must be a positive number, got {value!r}")
    elif name == "weight_decay":
        if not _is_number(value) or value < 0:
            raise ValueError(f"{where}: must be a non-negative number, got {value!r}")
    elif name == "min_lr_ratio":
        if not _is_number(value) or not 0 <= value <= 1:
            raise ValueError(f"{where}: must be a number in [0, 1], got {value!r}")
    elif name == "grad_clip":
        if value is not None and (not _is_number(value) or value < 0):
            raise ValueError(f"{where}: must be a non-negative number or null, got {value!r}")
    elif name == "betas":
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(_is_number(b) and 0 <= b < 1 for b in value)):
            raise ValueError(f"{where}: must be two numbers in [0, 1), got {value!r}")
    elif name == "scheduler":
        if value not in SCHEDULERS:
            raise ValueError(f"{where}: must be one of {SCHEDULERS}, got {value!r}")
    elif name == "amp":
        if value not in AMP_MODES:
            raise ValueError(f"{where}: must be one of {AMP_MODES}, got {value!r}")
    elif name == "collate":
        if not callable(value) and value not in COLLATES:
            raise ValueError(f"{where}: must be one of {COLLATES} or a callable, got {value!r}")
    elif name in ("out_dir", "device"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: must be a non-empty string, got {value!r}")
        if name == "device" and value != "auto" and not _is_device(value):
            raise ValueError(f"{where}: {value!r} is not a device; use auto, cpu, cuda or "
                             f"cuda:I (e.g. cuda:0)")
    elif name in ("shuffle", "drop_last", "progress", "tensorboard", "deterministic", "compile",
                  "pushforward"):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: must be true or false, got {value!r}")
    elif name == "compile_backend":
        if value not in COMPILE_BACKENDS:
            raise ValueError(f"{where}: must be one of {COMPILE_BACKENDS}, got {value!r}")
    elif name == "ema_decay":
        if value is not None and (not _is_number(value) or not 0 < value < 1):
            raise ValueError(f"{where}: must be a number in (0, 1) (e.g. 0.999) or null, got "
                             f"{value!r}")
    elif name == "init_from":
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{where}: must be the path of a model file or training "
                             f"checkpoint, or null, got {value!r}")
    elif name == "trainable":
        if value is not None and (not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(v, str) and v for v in value)):
            raise ValueError(f"{where}: must be a non-empty list of parameter-name patterns "
                             f"(e.g. ['last_block'] or ['blocks.3.*']) or null, got {value!r}")


def _is_device(text: str) -> bool:
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return False
    return True

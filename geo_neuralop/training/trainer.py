"""The training loop: AdamW, schedules, mixed precision, exact resume, DDP.

:class:`Trainer` trains any ``nn.Module`` on any map-style dataset, adapted by
``batch_fn(batch) -> (inputs, target, quadrature)``, ``forward_fn(model, inputs)``,
``loss(pred, target, quadrature)`` (default relative L2) and
``metric_fn(pred, target, quadrature)``; settings are a :class:`TrainerConfig`.
Rank 0 writes ``checkpoints/{last,previous,best}.pt`` and ``metrics.{jsonl,csv}``
under ``out_dir``. Runs resume exactly (bitwise on the CPU) from any checkpoint,
SIGTERM and Ctrl-C (SIGINT) write one and exit 143 and 130, and a non-finite loss stops
before the update. The run folder is written only when it is new, empty or a run of
ours, by one process at a time (:mod:`~geo_neuralop.training.run_folder`).
Recipes (:mod:`~geo_neuralop.training.recipes`, all :class:`TrainerConfig` settings):
gradient accumulation, ``torch.compile``, autoregressive multi-step training (with the
pushforward variant), a moving average of the weights, fine-tuning from a model file
with frozen parameters. The design notes are in ``docs/design/training.md``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from geo_neuralop.training.batches import (
    BatchFn,
    ForwardFn,
    count_samples,
    default_batch_fn,
    default_forward_fn,
    loss_kwargs,
    make_collate,
    move_to_device,
)
from geo_neuralop.training.checkpointing import (
    FORMAT,
    VERSION,
    CheckpointManager,
    capture_rng_state,
    check_format,
    restore_rng_state,
    state_is_finite,
)
from geo_neuralop.training.distributed import (
    DistributedInfo,
    ResumableDistributedSampler,
    ShardSampler,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    init_distributed,
    unwrap_model,
    wrap_model,
)
from geo_neuralop.training.losses import LpLoss
from geo_neuralop.training.metrics import MetricAverager, MetricLog
from geo_neuralop.training.recipes import (
    MicroBatches,
    WeightEMA,
    default_next_input,
    freeze_except,
    initial_weights,
    micro_batches,
)
from geo_neuralop.training.run_folder import open_run_folder
from geo_neuralop.training.trainer_config import TrainerConfig

logger = logging.getLogger(__name__)

class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or non-finite parameters and was stopped."""


class TrainingInterrupted(SystemExit):
    """Raised after SIGTERM or SIGINT (Ctrl-C) once the checkpoint is written; exit code
    ``128 + signum`` (143, 130)."""


def _ignore_sigint(worker_id: int) -> None:  # noqa: ARG001
    """In DataLoader workers: Ctrl-C reaches the whole process group, but only the main
    process acts on it (checkpoint, then exit 130); a worker that died would break that."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------


@dataclass
class _EpochAccumulator:
    loss_sum: float = 0.0
    count: int = 0
    time_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"loss_sum": self.loss_sum, "count": self.count, "time_s": self.time_s}


class Trainer:
    """Train a model on a dataset; see the module docstring for the design.

    Parameters
    ----------
    model : nn.Module
        Any module; its ``config`` attribute (if any) is saved in checkpoints.
    train_dataset : Dataset
        Map-style dataset.
    val_dataset : Dataset, optional
        Evaluated every ``val_every_epochs`` epochs.
    loss : callable, optional
        ``loss(pred, target, quadrature=...) -> scalar`` (the ``quadrature`` keyword
        only when ``batch_fn`` gives one); default relative L2
        (:class:`~geo_neuralop.training.losses.LpLoss`), which needs a quadrature
        from the batches (point clouds) or its own (``LpLoss(quadrature=spec)``).
    config : TrainerConfig, optional
    batch_fn : callable, optional
        ``batch_fn(batch) -> (inputs, target, quadrature)`` (the third value may
        also be None or a dict of loss keyword arguments); default
        :func:`default_batch_fn`.
    forward_fn : callable, optional
        ``forward_fn(model, inputs) -> pred``; default ``model(inputs)``.
    metric_fn : callable, optional
        ``metric_fn(pred, target, quadrature=...) -> {name: tensor [B]}`` for
        validation, e.g. :func:`~geo_neuralop.training.metrics.error_metrics`.
    step_callbacks : sequence of callable
        ``cb(trainer, info)`` after every optimizer step; ``info`` has
        ``epoch`` (0-based), ``step_in_epoch``, ``global_step`` (counts of steps
        done) and ``loss``.
    epoch_callbacks : sequence of callable
        ``cb(trainer, record)`` after every epoch with the epoch's metric record.
    next_input_fn : callable, optional
        ``next_input_fn(inputs, pred) -> inputs`` of the next autoregressive step
        (``rollout_steps > 1``); default: the prediction itself.

    Examples
    --------
    >>> import tempfile, torch
    >>> _ = torch.manual_seed(0)
    >>> from torch.utils.data import TensorDataset
    >>> x = torch.randn(32, 3)
    >>> data = TensorDataset(x, x @ torch.tensor([[1.0], [2.0], [-1.0]]))
    >>> cfg = TrainerConfig(epochs=2, batch_size=8, lr=5e-2, out_dir=tempfile.mkdtemp(),
    ...                     progress=False)
    >>> trainer = Trainer(torch.nn.Linear(3, 1), data, data, loss=torch.nn.MSELoss(), config=cfg)
    >>> history = trainer.fit()
    >>> [r["epoch"] for r in history], history[-1]["train_loss"] < history[0]["train_loss"]
    ([1, 2], True)
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Dataset,
        val_dataset: Dataset | None = None,
        loss: Callable[..., torch.Tensor] | None = None,
        config: TrainerConfig | None = None,
        *,
        batch_fn: BatchFn | None = None,
        forward_fn: ForwardFn | None = None,
        metric_fn: Callable[..., Mapping[str, torch.Tensor]] | None = None,
        step_callbacks: Sequence[Callable[[Trainer, dict], None]] = (),
        epoch_callbacks: Sequence[Callable[[Trainer, dict], None]] = (),
        next_input_fn: Callable[[Any, torch.Tensor], Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, ds in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
            if ds is not None and not hasattr(ds, "__getitem__"):
                raise TypeError(f"{name} must be a map-style dataset (with __getitem__ and "
                                f"__len__), got {type(ds).__name__}")
        if len(train_dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("train_dataset is empty")
        if config is None:
            config = TrainerConfig()
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__} "
                            f"(use TrainerConfig.from_dict for mappings)")
        self.model = model
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.loss_fn = loss if loss is not None else LpLoss()
        self.config = config
        self.batch_fn = batch_fn or default_batch_fn
        self.forward_fn = forward_fn or default_forward_fn
        self.metric_fn = metric_fn
        self.step_callbacks = list(step_callbacks)
        self.epoch_callbacks = list(epoch_callbacks)
        self.next_input_fn = next_input_fn or default_next_input
        self.ema: WeightEMA | None = None
        self.out_dir = Path(config.out_dir)
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints")
        self.metric_log = MetricLog(self.out_dir)

        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best_val: float | None = None
        self._acc = _EpochAccumulator()
        self._stop_signal: int | None = None
        self._stop_agreed = False
        self._is_setup = False
        self._tb = None

    # ---- setup ------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.info.is_main if self._is_setup else True

    def _setup(self) -> None:
        if self._is_setup:
            return
        cfg = self.config
        self.info: DistributedInfo = init_distributed(cfg.device)
        self.device = self.info.device
        world = self.info.world_size
        if cfg.batch_size % world != 0:
            raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of "
                             f"processes ({world}): it is the global batch size")
        self.local_batch_size = cfg.batch_size // world
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.use_amp = self.amp_dtype is not None and self.device.type == "cuda"
        if self.amp_dtype is not None and not self.use_amp:
            warnings.warn(f"amp={cfg.amp!r} applies only on CUDA devices; training on "
                          f"{self.device} in the model's own dtype", stacklevel=3)
        self.model.to(self.device)
        self._check_recipes()
        if cfg.trainable is not None:
            freeze_except(unwrap_model(self.model), cfg.trainable)
        self.ddp_model = wrap_model(self.model, self.info)
        self._ddp = self.ddp_model
        if cfg.compile:
            self.ddp_model = torch.compile(self.ddp_model, backend=cfg.compile_backend)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=cfg.lr,
            weight_decay=cfg.weight_decay, betas=(cfg.betas[0], cfg.betas[1]),
        )
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self.sampler = ResumableDistributedSampler(
            self.train_dataset, num_replicas=world, rank=self.info.rank, shuffle=cfg.shuffle,
            seed=cfg.seed, drop_last=cfg.drop_last,
        )
        n_local = self.sampler.num_samples
        if cfg.drop_last:
            self.steps_per_epoch = n_local // self.local_batch_size
        else:
            self.steps_per_epoch = math.ceil(n_local / self.local_batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"no training step per epoch: {len(self.train_dataset)} samples, "
                             f"global batch_size={cfg.batch_size}, drop_last=True")
        self.loader_generator = torch.Generator()
        self.train_loader = DataLoader(
            self.train_dataset,
            batch_size=self.local_batch_size // cfg.grad_accumulation_steps,
            sampler=self.sampler,
            num_workers=cfg.num_workers, collate_fn=make_collate(cfg.collate,
                                                                  self.train_dataset),
            drop_last=cfg.drop_last, generator=self.loader_generator,
            pin_memory=self.device.type == "cuda", worker_init_fn=_ignore_sigint,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self._is_setup = True

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        warm = cfg.warmup_steps
        factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
        if cfg.scheduler == "cosine":
            total = max(1, cfg.epochs * self.steps_per_epoch - warm)
            progress = min(1.0, max(0, step - warm) / total)
            factor *= cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * progress))
        elif cfg.scheduler == "step":
            factor *= cfg.gamma ** ((step // self.steps_per_epoch) // cfg.step_size)
        return factor

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    # ---- signals ----------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if signum == signal.SIGINT and self._stop_signal is not None:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once, without a checkpoint
        self._stop_signal = signum

    def _install_signal_handler(self) -> dict[int, Any]:
        """SIGTERM and SIGINT (Ctrl-C) ask for a checkpoint and a stop; returns the old
        handlers (none off the main thread, where signals cannot be caught)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self._on_signal)
                for signum in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the loop to checkpoint and stop after the current step (as SIGTERM does)."""
        self._stop_signal = signum

    # ---- checkpoints ------------------------------------------------------------------
    def state_dict(self, epoch_sums: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Everything needed to continue training exactly (see the module docstring).

        ``epoch_sums`` replaces this process's running loss sums of the epoch (the
        checkpoint stores the sums over all processes).
        """
        model = unwrap_model(self.model)
        acc = self._acc.as_dict()
        if epoch_sums is not None:
            acc.update(epoch_sums)
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": model.state_dict(),
            "model_class": type(model).__name__,
            "model_config": getattr(model, "config", None),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": capture_rng_state(),
            "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step, **acc},
            "sampler": {"seed": self.config.seed, "epoch": self.epoch,
                        "start": self.step_in_epoch * self.local_batch_size,
                        "world_size": self.info.world_size},
            "history": list(self.history),
            "best_val": self.best_val,
            "trainer_config": self.config.to_dict(),
            **self._recipe_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (model, optimizer, RNG, progress ...)."""
        self._setup()
        check_format(state)
        saved_world = state["sampler"].get("world_size", 1)
        if saved_world != self.info.world_size:
            warnings.warn(f"checkpoint was written by {saved_world} processes, resuming on "
                          f"{self.info.world_size}: the run continues, but not bit-identically",
                          stacklevel=2)
        old_cfg = state.get("trainer_config", {})
        harmless = ("out_dir", "progress", "num_workers", "tensorboard", "device",
                    "eval_batch_size", "val_every_epochs")
        changed = sorted(k for k, v in self.config.to_dict().items()
                         if k in old_cfg and old_cfg[k] != v and k not in harmless)
        if changed:
            warnings.warn(f"resuming with changed settings {changed}; the continued run differs "
                          f"from the original one", stacklevel=2)
        unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        prog = state["progress"]
        self.epoch = int(prog["epoch"])
        self.step_in_epoch = int(prog["step_in_epoch"])
        self.global_step = int(prog["global_step"])
        # the saved sums are over all processes: rank 0 carries them, the others restart at 0
        main = self.info.rank == 0
        self._acc = _EpochAccumulator(float(prog["loss_sum"]) if main else 0.0,
                                      int(prog["count"]) if main else 0, float(prog["time_s"]))
        if self.step_in_epoch > self.steps_per_epoch:
            raise ValueError(f"checkpoint is at step {self.step_in_epoch} of an epoch with only "
                             f"{self.steps_per_epoch} steps: the dataset or batch size changed")
        self.history = [dict(r) for r in state.get("history", [])]
        self.best_val = state.get("best_val")
        self._load_recipe_state(state)

    def _check_finite_parameters(self) -> None:
        if not state_is_finite(unwrap_model(self.model).state_dict()):
            raise NonFiniteLossError(
                f"model parameters became non-finite by global step {self.global_step} "
                f"(epoch {self.epoch + 1}); training stopped. {self._last_good_message()}"
            )

    def save_checkpoint(self, best: bool = False) -> Path | None:
        """Write ``last.pt`` (and ``best.pt``) on rank 0; checks parameters are finite."""
        self._check_finite_parameters()
        sums = None
        if self.info.world_size > 1:  # a collective: every process takes part
            total = all_reduce_sum(torch.tensor([self._acc.loss_sum, float(self._acc.count)],
                                                dtype=torch.float64))
            sums = {"loss_sum": float(total[0]), "count": int(total[1])}
        if not self.is_main:
            return None
        return self.checkpoints.save(self.state_dict(sums), best=best)

    def _checked_loss(self, loss: Any, where: str = "") -> float:
        """The value of a step's loss, after checking it is a scalar tensor and finite on
        every rank (all ranks agree before any of them raises); ``where`` adds to the
        position named in the message (e.g. the micro-batch)."""
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(f"the loss must return a scalar tensor, got "
                            f"{getattr(loss, 'shape', type(loss).__name__)}")
        value = float(loss.detach())
        nonfinite, self._stop_agreed = self._sync_flags(not math.isfinite(value))
        if nonfinite:
            raise NonFiniteLossError(
                f"non-finite training loss ({value} on rank {self.info.rank}) at epoch "
                f"{self.epoch + 1}, step {self.step_in_epoch + 1} of {self.steps_per_epoch} "
                f"(global step {self.global_step + 1}{where}); training stopped before the "
                f"update. {self._last_good_message()} Lower the learning rate, enable "
                f"grad_clip, or check the data.")
        return value

    def _last_good_message(self) -> str:
        path = self.checkpoints.last_path
        if path.exists():
            return f"The last good checkpoint is {path}."
        return "No checkpoint had been written yet."

    # ---- batches ----------------------------------------------------------------------
    def _split(self, batch: Any) -> tuple[Any, torch.Tensor, dict[str, Any]]:
        batch = move_to_device(batch, self.device)
        out = self.batch_fn(batch)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("batch_fn must return (inputs, target, quadrature)")
        inputs, target, extra = out
        return inputs, target, loss_kwargs(extra)

    # ---- training ---------------------------------------------------------------------
    def fit(self, resume: bool = False, overwrite: bool = False) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs.

        Parameters
        ----------
        resume : bool
            Continue from the newest checkpoint in ``out_dir`` (a fresh start if
            there is none).
        overwrite : bool
            Start fresh even though ``out_dir`` holds checkpoints of another run.

        Returns
        -------
        list of dict
            One metric record per epoch (the contents of ``metrics.jsonl``).

        Raises
        ------
        NonFiniteLossError
            On a NaN/inf loss; ``last.pt`` is the last good checkpoint.
        TrainingInterrupted
            After SIGTERM or SIGINT, once the checkpoint is written (exit code 143 or 130).
        RunFolderError
            If ``out_dir`` holds files that are not a run of ours.
        FolderBusyError
            If another process is writing into ``out_dir``.
        ValueError
            If ``out_dir`` has checkpoints and neither ``resume`` nor ``overwrite``.
        """
        self._setup()
        folder: contextlib.AbstractContextManager = contextlib.nullcontext()
        if self.is_main:  # refuses a folder of someone else's files; one writer at a time
            folder = open_run_folder(self.out_dir, resume=resume, overwrite=overwrite)
        with folder:
            return self._fit(resume, overwrite)

    def _fit(self, resume: bool, overwrite: bool) -> list[dict[str, Any]]:
        previous_handlers = self._install_signal_handler()
        try:
            self._prepare_run(resume, overwrite)
            cfg = self.config
            while self.epoch < cfg.epochs:
                self._train_epoch()
                self._end_epoch()
            self._finish_recipes()
            return list(self.history)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            if self.info.initialized_here:
                # the process group made for this run ends with it; a later call sets up anew
                cleanup_distributed(self.info)
                self._is_setup = False

    def _prepare_run(self, resume: bool, overwrite: bool) -> None:
        cfg = self.config
        state = None
        if resume:
            state = self.checkpoints.load_latest(map_location="cpu")
            if state is None:
                logger.info("no checkpoint in %s: starting a fresh run", self.checkpoints.directory)
        elif self.checkpoints.exists() and not overwrite:
            raise ValueError(f"{self.checkpoints.directory} already holds checkpoints; pass "
                             f"resume=True to continue that run or overwrite=True to start over")
        if state is not None:
            self.load_state_dict(state)
            logger.info("resumed from %s at epoch %d, step %d (global step %d)",
                        state.get("_path"), self.epoch + 1, self.step_in_epoch, self.global_step)
        else:
            torch.manual_seed(cfg.seed)
            np.random.seed(cfg.seed)  # noqa: NPY002 (models may use the legacy global RNG)
            random.seed(cfg.seed)
            self.epoch = self.step_in_epoch = self.global_step = 0
            self.history, self.best_val, self._acc = [], None, _EpochAccumulator()
            self._start_recipes()
        if self.is_main:
            self.metric_log.rewrite(self.history)
            if cfg.tensorboard:
                self._open_tensorboard()
        barrier()

    def _open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard=True but the tensorboard package is not installed; "
                          "metrics go to metrics.jsonl/csv only", stacklevel=3)
            return
        self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"),
                                 purge_step=self.global_step or None)

    def _sync_flags(self, nonfinite: bool) -> tuple[bool, bool]:
        """(any process saw a non-finite loss, any process was asked to stop)."""
        stop = self._stop_signal is not None
        if self.info.world_size > 1:
            flags = all_reduce_sum(torch.tensor([float(nonfinite), float(stop)]))
            return bool(flags[0] > 0), bool(flags[1] > 0)
        return nonfinite, stop

    def _train_epoch(self) -> None:
        cfg = self.config
        epoch = self.epoch
        self.sampler.set_epoch(epoch)
        self.sampler.set_start(min(self.step_in_epoch * self.local_batch_size,
                                   self.sampler.num_samples))
        self.loader_generator.manual_seed(cfg.seed + epoch)
        self.ddp_model.train()
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress
                                                                      and self.is_main),
                   leave=False, dynamic_ncols=True)
        t_start = time.perf_counter()
        time_before = self._acc.time_s
        samples = 0
        try:
            for batch in self._step_batches():
                loss_value, n = self._train_step(batch)
                samples += n
                elapsed = time.perf_counter() - t_start
                self._acc.time_s = time_before + elapsed
                rate = samples * self.info.world_size / max(elapsed, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{self._acc.loss_sum / max(self._acc.count, 1):.4g}",
                                samples_s=f"{rate:.1f}", refresh=False)
                if self._tb is not None:
                    self._tb.add_scalar("train/loss_step", loss_value, self.global_step)
                info = {"epoch": epoch, "step_in_epoch": self.step_in_epoch,
                        "global_step": self.global_step, "loss": loss_value}
                for cb in self.step_callbacks:
                    cb(self, info)
                # one process: the flag itself; several: the flag agreed on in the step
                stop = (self._stop_signal is not None if self.info.world_size == 1
                        else self._stop_agreed)
                due = (cfg.checkpoint_every_steps > 0
                       and self.global_step % cfg.checkpoint_every_steps == 0)
                if stop:
                    self._interrupt()
                if due:
                    self.save_checkpoint()
        finally:
            bar.close()

    def _train_step(self, batch: Any) -> tuple[float, int]:
        cfg = self.config
        if isinstance(batch, MicroBatches) or cfg.rollout_steps > 1:
            return self._recipe_step(batch if isinstance(batch, MicroBatches) else [batch])
        inputs, target, kwargs = self._split(batch)
        with self._autocast():
            pred = self.forward_fn(self.ddp_model, inputs)
        loss = self.loss_fn(pred, target, **kwargs)
        loss_value = self._checked_loss(loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_ema()
        n = count_samples(target, kwargs)
        self.step_in_epoch += 1
        self.global_step += 1
        self._acc.loss_sum += loss_value * n
        self._acc.count += n
        return loss_value, n

    # ---- recipes (see geo_neuralop.training.recipes) ------------------------------------
    def _check_recipes(self) -> None:
        cfg = self.config
        if cfg.pushforward and cfg.rollout_steps < 2:
            raise ValueError(f"trainer.pushforward: needs rollout_steps > 1 (the steps without "
                             f"gradient come before the last one), got rollout_steps="
                             f"{cfg.rollout_steps}")
        if self.local_batch_size % cfg.grad_accumulation_steps:
            raise ValueError(f"trainer.grad_accumulation_steps: {cfg.grad_accumulation_steps} "
                             f"must divide the per-process batch ({self.local_batch_size} = "
                             f"batch_size {cfg.batch_size} / {self.info.world_size} processes)")

    def _start_recipes(self) -> None:
        """At a fresh start: initial weights (fine-tuning), then the weight average."""
        cfg = self.config
        model = unwrap_model(self.model)
        if cfg.init_from is not None:
            weights = initial_weights(cfg.init_from)
            try:
                model.load_state_dict(weights)
            except RuntimeError as error:
                raise ValueError(f"trainer.init_from: the weights in {cfg.init_from!r} do not "
                                 f"fit {type(model).__name__}: {error}") from error
        self.ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None

    def _recipe_state(self) -> dict[str, Any]:
        if self.ema is None:
            return {}
        saved = self.ema.state_dict()
        return {"ema": saved, "ema_model": saved["state"]}

    def _load_recipe_state(self, state: Mapping[str, Any]) -> None:
        cfg = self.config
        model = unwrap_model(self.model)
        self.ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:
                warnings.warn("ema_decay is set but the checkpoint has no weight average: it "
                              "starts from the checkpoint's weights", stacklevel=3)

    def _update_ema(self) -> None:
        if self.ema is not None:
            self.ema.update(unwrap_model(self.model))

    def _evaluation_weights(self, model: nn.Module) -> contextlib.AbstractContextManager:
        return self.ema.swapped_in(model) if self.ema is not None else contextlib.nullcontext()

    def _finish_recipes(self) -> None:
        """After training, the model holds the weight average (the checkpoints hold both)."""
        if self.ema is not None:
            unwrap_model(self.model).load_state_dict(self.ema.state)

    def _step_batches(self):
        """The batches of the optimizer steps: the loader's, or groups of micro-batches."""
        cfg = self.config
        if cfg.grad_accumulation_steps == 1:
            return iter(self.train_loader)
        return micro_batches(self.train_loader, cfg.grad_accumulation_steps, cfg.drop_last)

    def _no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce for all but the last micro-batch of a step."""
        if last or self.info.world_size == 1 or not hasattr(self._ddp, "no_sync"):
            return contextlib.nullcontext()
        return self._ddp.no_sync()

    def _batch_loss(self, model: nn.Module, inputs: Any, target: torch.Tensor,
                    kwargs: Mapping[str, Any]) -> torch.Tensor:
        """One-step loss, or the loss of an autoregressive rollout of ``rollout_steps``.

        The rollout feeds each prediction to ``next_input_fn``; its loss is the mean of
        the per-step losses against ``target[:, t]`` (the last step only, and no gradient
        through the others, with ``pushforward``).
        """
        cfg = self.config
        steps = cfg.rollout_steps
        if steps == 1:
            with self._autocast():
                pred = self.forward_fn(model, inputs)
            return self.loss_fn(pred, target, **kwargs)
        if target.dim() < 2 or target.shape[1] < steps:
            raise ValueError(f"trainer.rollout_steps={steps} needs targets with {steps} frames "
                             f"on axis 1 ([B, T, C, ...] on grids, [N, T, C] on meshes), got "
                             f"shape {tuple(target.shape)}")
        losses = []
        x = inputs
        for t in range(steps):
            last = t == steps - 1
            tracked = last or not cfg.pushforward
            with torch.set_grad_enabled(tracked and torch.is_grad_enabled()), self._autocast():
                pred = self.forward_fn(model, x)
            if tracked:
                losses.append(self.loss_fn(pred, target[:, t], **kwargs))
            if not last:
                x = self.next_input_fn(x, pred if tracked else pred.detach())
        return torch.stack(losses).mean()

    def _recipe_step(self, batches: list[Any]) -> tuple[float, int]:
        """An optimizer step over micro-batches (weights ``n_i / n``) and/or a rollout loss."""
        cfg = self.config
        parts = [self._split(b) for b in batches]
        counts = [count_samples(target, kwargs) for _, target, kwargs in parts]
        total = sum(counts)
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for i, ((inputs, target, kwargs), n) in enumerate(zip(parts, counts, strict=True)):
            last = i == len(parts) - 1
            with self._no_sync(last):
                loss = self._batch_loss(self.ddp_model, inputs, target, kwargs)
                value = self._checked_loss(loss, f", micro-batch {i + 1} of {len(parts)}")
                self.scaler.scale(loss * (n / total)).backward()
            loss_value += value * n / total
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_ema()
        self.step_in_epoch += 1
        self.global_step += 1
        self._acc.loss_sum += loss_value * total
        self._acc.count += total
        return loss_value, total

    def _interrupt(self) -> None:
        signum = self._stop_signal if self._stop_signal is not None else signal.SIGTERM
        path = self.save_checkpoint()
        barrier()
        if self.is_main:
            logger.warning("received signal %d: checkpoint written to %s at epoch %d, step %d "
                           "(global step %d); continue with resume=True", signum, path,
                           self.epoch + 1, self.step_in_epoch, self.global_step)
        raise TrainingInterrupted(128 + int(signum))

    def _end_epoch(self) -> None:
        cfg = self.config
        sums = all_reduce_sum(torch.tensor([self._acc.loss_sum, float(self._acc.count)],
                                           dtype=torch.float64))
        train_loss = float(sums[0] / sums[1]) if sums[1] > 0 else math.nan
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "global_step": self.global_step,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "train_loss": train_loss,
        }
        last = self.epoch + 1 == cfg.epochs
        if self.val_dataset is not None and ((self.epoch + 1) % cfg.val_every_epochs == 0
                                             or last):
            for name, value in self.evaluate(self.val_dataset).items():
                record[f"val_{name}"] = value
        record["epoch_time_s"] = self._acc.time_s
        record["samples_per_s"] = (float(sums[1]) / self._acc.time_s
                                   if self._acc.time_s > 0 else math.nan)
        val_loss = record.get("val_loss")
        best = (val_loss is not None and math.isfinite(val_loss)
                and (self.best_val is None or val_loss < self.best_val))
        if best:
            self.best_val = val_loss
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self._acc = _EpochAccumulator()
        self.save_checkpoint(best=best)
        if self.is_main:
            self.metric_log.append(record)
            if self._tb is not None:
                for name, value in record.items():
                    if name != "epoch" and isinstance(value, (int, float)):
                        self._tb.add_scalar(f"epoch/{name}", value, record["epoch"])
                self._tb.flush()
            if cfg.progress:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                  if k.endswith("loss") and isinstance(v, float))
                tqdm.write(f"epoch {record['epoch']}/{cfg.epochs}: {shown}")
        for cb in self.epoch_callbacks:
            cb(self, record)
        _, stop = self._sync_flags(False)
        if stop:
            self._interrupt()

    # ---- evaluation -------------------------------------------------------------------
    def evaluate(self, dataset: Dataset | None = None, batch_size: int | None = None
                 ) -> dict[str, float]:
        """Mean loss (``"loss"``) and ``metric_fn`` metrics over a dataset.

        Each process evaluates its share (:class:`ShardSampler`, no padding) with
        the unwrapped model; sums are all-reduced, so the means are exact over
        the whole dataset.

        Parameters
        ----------
        dataset : Dataset, optional
            Default: the validation dataset.
        batch_size : int, optional
            Per process; default ``eval_batch_size`` or ``batch_size``.
        """
        self._setup()
        dataset = self.val_dataset if dataset is None else dataset
        if dataset is None:
            raise ValueError("evaluate() needs a dataset: none given and no val_dataset")
        bs = batch_size or self.config.eval_batch_size or self.config.batch_size
        loader = DataLoader(
            dataset, batch_size=bs,
            sampler=ShardSampler(dataset, self.info.world_size, self.info.rank),
            num_workers=self.config.num_workers,
            collate_fn=make_collate(self.config.collate, dataset),
            pin_memory=self.device.type == "cuda",
        )
        model = unwrap_model(self.model)
        was_training = model.training
        model.eval()
        avg = MetricAverager()
        try:
            with self._evaluation_weights(model), torch.no_grad():
                for batch in loader:
                    inputs, target, kwargs = self._split(batch)
                    with self._autocast():
                        pred = self.forward_fn(model, inputs)
                    loss = self.loss_fn(pred, target, **kwargs)
                    avg.update({"loss": loss}, count=count_samples(target, kwargs))
                    if self.metric_fn is not None:
                        avg.update(self.metric_fn(pred, target, **kwargs))
        finally:
            model.train(was_training)
        return avg.compute(distributed=self.info.world_size > 1)

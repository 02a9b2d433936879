"""Model checkpoints that rebuild the model from the file alone.

A checkpoint is a ``torch.save`` file holding a dict of plain Python values and
tensors only, so it loads with ``torch.load(..., weights_only=True)`` (no
arbitrary code runs when reading an untrusted file)::

    {"format": "geo_neuralop-model", "version": 2,
     "name": <registered model name>, "config": <model.config>,
     "state_dict": {<parameter/buffer name>: tensor},
     "geo_neuralop_version": "0.1.0", "extra": <user data or None>,
     "sha256": <digest of all the entries above>}

The digest (:mod:`geo_neuralop.utils.digest`) detects bit flips that ``torch.load``
itself does not notice (the zip container does not check tensor data) and any edit
of the config or the weights; it is mandatory, so deleting it does not help either.
Before the model is built, its config is checked against the stored tensors on the
``meta`` device (:func:`build_checked_model`): a small file cannot ask for a huge model.

Examples
--------
>>> import tempfile, pathlib, torch
>>> from geo_neuralop.models import get_model, load_model, save_model
>>> model = get_model("unet", in_channels=1, out_channels=1, hidden_channels=4, depth=1)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "unet.pt"
>>> save_model(model, path, extra={"epoch": 3})
>>> again = load_model(path)
>>> x = torch.randn(2, 1, 9, 7)
>>> bool(torch.equal(model(x), again(x)))
True
>>> read_checkpoint(path)["extra"]
{'epoch': 3}
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from geo_neuralop._version import __version__
from geo_neuralop.models.registry import (
    accepted_keys,
    check_plain,
    get_model,
    get_model_class,
    model_name,
)
from geo_neuralop.utils.atomic import atomic_path
from geo_neuralop.utils.digest import DIGEST_KEY, check_digest, payload_digest

__all__ = ["FORMAT", "VERSION", "build_checked_model", "load_model", "model_name",
           "read_checkpoint", "save_model"]

#: Value of the ``"format"`` entry of every geo_neuralop model checkpoint.
FORMAT = "geo_neuralop-model"
#: Checkpoint layout this module writes and reads. Version 2 (geo_neuralop 0.2) came with
#: the redesign of the layers: models hold their local layers inside their blocks and
#: configs use one vocabulary (``domain``, ``skip``, ``n_dim``, ``n_layers``), so the
#: parameter names and configs of version 1 files do not fit; they are refused.
VERSION = 2

_REQUIRED = ("format", "version", "name", "config", "state_dict")

# What torch.load raises on a damaged file: a truncated zip (RuntimeError), an
# empty file (EOFError), garbage (KeyError, UnpicklingError, UnicodeDecodeError,
# IndexError, ...). Measured by truncating and flipping bytes of real checkpoints.
_READ_ERRORS = (
    RuntimeError,
    EOFError,
    pickle.UnpicklingError,
    KeyError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    zipfile.BadZipFile,
)


def _check_extra(value: Any, where: str = "extra") -> None:
    """Plain values, or tensors, nested in lists/tuples/dicts."""
    if isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_extra(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}; keys must be str")
            _check_extra(item, f"{where}[{key!r}]")
        return
    check_plain(value, where)


def save_model(
    model: torch.nn.Module, path: str | os.PathLike, extra: Any = None
) -> None:
    """Write ``model`` (architecture config and weights) to ``path`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        An instance of a registered model class with a plain ``config`` dict.
    path : str or os.PathLike
        Target file; parent folders are created. The file is first written to a
        temporary name in the same folder and then renamed, so an interrupted
        save never leaves a half-written checkpoint at ``path``.
    extra : optional
        Anything made of plain values and tensors (epoch, optimizer settings,
        normalization statistics); returned by :func:`read_checkpoint`.

    Raises
    ------
    TypeError
        If the model's class is not registered, it has no ``config`` dict, the
        config or ``extra`` holds a value that is not plain (the message names
        its path), or a config key is not a constructor argument of the model.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    name = model_name(model)
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(
            f"model {name!r} has no config dict (self.config = {config!r}); registered "
            "models must store their constructor arguments in self.config"
        )
    check_plain(config, "config")
    accepted, _, var_kw = accepted_keys(get_model_class(name))
    if not var_kw:
        unknown = [k for k in config if k not in accepted]
        if unknown:
            raise TypeError(
                f"model {name!r} config key(s) {', '.join(map(repr, unknown))} are not "
                f"constructor arguments (accepted: {', '.join(accepted)}); the checkpoint "
                "could not be loaded"
            )
    _check_extra(extra)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "config": config,
        "state_dict": state,
        "geo_neuralop_version": __version__,
        "extra": extra,
    }
    payload[DIGEST_KEY] = payload_digest(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint file, returning its dict (tensors on the CPU).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated or corrupt (unreadable, or its checksum does not
        match), is not a geo_neuralop model checkpoint, or has an unsupported
        version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path is a directory, not a file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            detail = [ln.strip() for ln in text.splitlines() if "Unsupported global" in ln]
            raise ValueError(
                f"{path} holds objects other than tensors and plain values, so it is not a "
                "geo_neuralop model checkpoint (refusing to unpickle arbitrary objects)"
                + (f": {detail[0].split('. Please')[0]}" if detail else "")
            ) from exc
        raise ValueError(
            f"cannot read checkpoint {path}: truncated or corrupt file ({text[:200]})"
        ) from exc
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise
    except (*_READ_ERRORS, OSError) as exc:
        # torch's zip reader reports a truncated file as OSError(EINVAL) when it reads
        # from a file handle; access problems were re-raised just above.
        raise ValueError(
            f"cannot read checkpoint {path}: truncated or corrupt file "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        hint = ""
        if isinstance(payload, dict) and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()
        ):
            hint = " (it looks like a bare state_dict; load it with model.load_state_dict)"
        raise ValueError(
            f"{path} is not a geo_neuralop model checkpoint: expected format {FORMAT!r}, "
            f"found {found!r}{hint}"
        )
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: invalid checkpoint version {version!r}")
    if version > VERSION:
        raise ValueError(
            f"{path} has checkpoint version {version}, newer than this geo_neuralop reads "
            f"(version {VERSION}); upgrade geo_neuralop"
        )
    if version < VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {version}, written by geo_neuralop "
            f"{payload.get('geo_neuralop_version', '0.1')}; this geo_neuralop "
            f"({__version__}) reads version {VERSION} only: the layer redesign of 0.2 renamed "
            f"model parameters and config keys. Retrain the model, or load it with "
            f"geo_neuralop 0.1"
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"{path} is missing checkpoint entries {missing}")
    check_digest(payload, f"checkpoint {path}", "model file")
    if not isinstance(payload["config"], dict):
        raise ValueError(f"{path}: config must be a dict, got {type(payload['config']).__name__}")
    if not isinstance(payload["state_dict"], dict):
        raise ValueError(
            f"{path}: state_dict must be a dict, got {type(payload['state_dict']).__name__}"
        )
    return payload


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Rebuild a model from a checkpoint written by :func:`save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file.
    map_location : str or torch.device
        Device to put the model on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns
    -------
    torch.nn.Module
        The model, built with the stored config, holding the stored weights (with
        their stored dtypes), in training mode; call ``.eval()`` for inference.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, corrupt or not a geo_neuralop checkpoint, names an
        unknown model, or its weights do not fit the rebuilt model (missing or
        unexpected entries, shape mismatches; the message lists them).
    TypeError
        If the stored config is not accepted by the model's constructor.
    """
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(
            f"map_location must be a str or torch.device, got {type(map_location).__name__}"
        )
    device = torch.device(map_location)
    payload = read_checkpoint(path)
    model = build_checked_model(payload["name"], payload["config"], payload["state_dict"], path)
    return model.to(device)


#: A model is refused when its parameters and buffers (non-persistent ones included, which
#: a file does not store) would take more than this many times the bytes of the stored
#: tensors, plus :data:`MAX_UNSTORED_BYTES`.
MAX_UNSTORED_BYTES = 8 * 1024**3


def build_checked_model(name: str, config: dict[str, Any], state_dict: dict[str, Any],
                        source: Any = "checkpoint",
                        max_unstored_bytes: int = MAX_UNSTORED_BYTES) -> torch.nn.Module:
    """The registered model ``name`` built from ``config`` with ``state_dict`` loaded, checked
    before anything is allocated.

    The model is first built on PyTorch's ``meta`` device (shapes, no memory): every
    stored tensor must have the shape the config gives, so the parameter count is the
    stored one (bounded by the file that was read), and the tensors the model would
    hold beyond the stored ones (non-persistent buffers, e.g. spherical harmonic
    tables) must stay under ``max_unstored_bytes``. Only then is the model built for
    real. An 8 KB file whose config asks for a model of tens of GB is refused in
    milliseconds.

    Parameters
    ----------
    name : str
        Registered model name.
    config : dict
        Constructor arguments.
    state_dict : dict of str to torch.Tensor
        The stored weights.
    source : object
        The file, for messages.
    max_unstored_bytes : int
        Bound of the bytes the built model holds beyond the stored tensors.

    Raises
    ------
    ValueError
        Unknown model name, weights that do not fit the config (every missing,
        unexpected or mismatched entry listed), or a model too large for its file.
    TypeError
        If the config is not accepted by the model's constructor.
    """
    try:
        get_model_class(name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from exc
    try:
        with torch.device("meta"):
            skeleton = get_model(name, **config)
    except TypeError as exc:
        raise TypeError(f"cannot rebuild model {name!r} from {source}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"cannot rebuild model {name!r} from {source}: {exc}") from exc
    except (RuntimeError, NotImplementedError):
        skeleton = None  # a constructor that computes values: checked after building
    if skeleton is not None:
        _check_fit(skeleton, state_dict, name, source)
        stored = sum(t.numel() * t.element_size() for t in state_dict.values()
                     if isinstance(t, torch.Tensor))
        needed = sum(t.numel() * t.element_size()
                     for t in (*skeleton.parameters(), *skeleton.buffers()))
        if needed > 2 * stored + max_unstored_bytes:
            raise ValueError(
                f"model {name!r} of {source} would hold {needed / 1e9:.3g} GB of tensors for "
                f"{stored / 1e9:.3g} GB of stored weights; its config asks for more than the "
                f"file can describe (pass max_unstored_bytes= to allow it)")
    try:
        model = get_model(name, **config)
    except TypeError as exc:
        raise TypeError(f"cannot rebuild model {name!r} from {source}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"cannot rebuild model {name!r} from {source}: {exc}") from exc
    _load_weights(model, state_dict, name, source)
    return model


def _check_fit(
    model: torch.nn.Module, stored: dict[str, torch.Tensor], name: str, path: Any
) -> None:
    """Raise ValueError listing every entry of ``stored`` that does not fit ``model``."""
    target = model.state_dict(keep_vars=True)
    missing = [k for k in target if k not in stored]
    unexpected = [k for k in stored if k not in target]
    mismatched = [
        f"{k}: stored {tuple(stored[k].shape)}, model {tuple(target[k].shape)}"
        for k in target
        if k in stored
        and isinstance(stored[k], torch.Tensor)
        and tuple(stored[k].shape) != tuple(target[k].shape)
    ]
    not_tensors = [k for k in stored if not isinstance(stored[k], torch.Tensor)]
    if missing or unexpected or mismatched or not_tensors:
        parts = []
        if missing:
            parts.append(f"missing entries {missing}")
        if unexpected:
            parts.append(f"unexpected entries {unexpected}")
        if mismatched:
            parts.append(f"shape mismatches [{'; '.join(mismatched)}]")
        if not_tensors:
            parts.append(f"non-tensor entries {not_tensors}")
        raise ValueError(
            f"the weights in {path} do not fit model {name!r} built from its config: "
            + ", ".join(parts)
        )


def _load_weights(
    model: torch.nn.Module, stored: dict[str, torch.Tensor], name: str, path: Any
) -> None:
    _check_fit(model, stored, name, path)
    target = model.state_dict(keep_vars=True)
    model.load_state_dict(stored, strict=True)
    # load_state_dict copies into the freshly built tensors, casting to their dtype;
    # keep the stored dtype instead (a model trained in float64 stays float64).
    for key, tensor in target.items():
        if tensor.dtype != stored[key].dtype:
            tensor.data = stored[key].to(tensor.device)

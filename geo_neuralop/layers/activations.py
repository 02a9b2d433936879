"""The activation table shared by every layer and model."""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "get_activation"]

#: Activation modules by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def get_activation(name: str) -> nn.Module:
    """A new activation module from its name ("gelu", "relu", "silu", "tanh", "identity").

    Raises
    ------
    ValueError
        For any other name (the message lists the known ones).
    """
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name.lower()]()

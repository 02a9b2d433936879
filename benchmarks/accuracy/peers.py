"""Peer libraries' own models behind the experiment's model interface (thin adapters).

Each class registers a peer model under a name of its own (``register_model``), so a
study lists it like any geo_neuralop model and :func:`~geo_neuralop.training.run_experiment`
trains it with the same trainer, data adapter, loss and evaluation. The adapters
build the peer's class from its installed package and only move tensors between
layouts; they do not change the peer's layers:

=================  ==========================================================  ========
registered name    peer model                                                  family
=================  ==========================================================  ========
``nop_fno``        ``neuralop.models.FNO`` (neuraloperator 2.0.0)              grid
``nop_local_no``   ``neuralop.models.LocalNO``                                 grid
``nop_gino``       ``neuralop.models.GINO``, one forward per mesh of a batch   mesh
``th_sfno``        ``torch_harmonics.examples.models.SphericalFourierNeural``  sphere
                   ``Operator`` (torch-harmonics 0.8.0)
``th_lsno``        ``torch_harmonics.examples.models.LocalSphericalNeural``    sphere
                   ``Operator`` (``lsno.py``)
``th_s2unet``      ``torch_harmonics.examples.models.SphericalUNet``           sphere
=================  ==========================================================  ========

Choices an adapter has to make are stated in its docstring (GINO's coordinates,
the sphere models' grid shape and dropout). Installing the peers: ``make install
EXTRAS=dev,bench``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Batch

from geo_neuralop.models.registry import register_model

__all__ = ["PEER_MODELS", "NeuralopFNO", "NeuralopGINO", "NeuralopLocalNO", "THLocalSNO",
           "THSFNO", "THSphericalUNet", "peer_versions"]


def _ints(name: str, value: Sequence[int], length: int | None = None) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"{name} must be a sequence of positive ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {value!r}")
    return tuple(int(v) for v in value)


class _NeuralopModule(nn.Module):
    """Holds a neuraloperator model as ``self.model``; its state dict holds tensors only.

    neuraloperator's models add a ``_metadata`` dict (their version and init
    arguments) to every state dict; our checkpoints store tensors, and the
    arguments are already in ``config``.
    """

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state.pop("_metadata", None)
        return state


@register_model("nop_fno", family="grid")
class NeuralopFNO(_NeuralopModule):
    """neuraloperator's ``FNO`` on ``[B, C, *spatial]`` grids.

    ``n_modes`` is neuraloperator's convention: ``n_modes[0] = 17`` keeps
    ``|k_1| <= 8`` (our ``SpectralConv`` with 16 modes keeps the same set), the
    last axis keeps ``n_modes[-1] // 2 + 1`` non-negative frequencies.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: Sequence[int],
                 hidden_channels: int = 32, n_layers: int = 4,
                 domain_padding: float | None = None, use_channel_mlp: bool = True,
                 channel_mlp_expansion: float = 0.5) -> None:
        super().__init__()
        from neuralop.models import FNO

        self.model = FNO(n_modes=_ints("n_modes", n_modes), in_channels=in_channels,
                         out_channels=out_channels, hidden_channels=hidden_channels,
                         n_layers=n_layers, domain_padding=domain_padding,
                         use_channel_mlp=use_channel_mlp,
                         channel_mlp_expansion=channel_mlp_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, *spatial] -> [B, C_out, *spatial]``."""
        return self.model(x)


@register_model("nop_local_no", family="grid")
class NeuralopLocalNO(_NeuralopModule):
    """neuraloperator's ``LocalNO`` (spectral + DISCO + finite-difference layers).

    ``default_in_shape`` is the training grid (its DISCO stencils are built for
    it); ``radius_cutoff`` is in its own units (the domain has side
    ``domain_length``, 2 by default), None: one grid cell, the package default.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: Sequence[int],
                 default_in_shape: Sequence[int], hidden_channels: int = 32,
                 n_layers: int = 4, disco_layers: bool = True, diff_layers: bool = True,
                 radius_cutoff: float | None = None, conv_padding_mode: str = "periodic",
                 use_channel_mlp: bool = True, channel_mlp_expansion: float = 0.5,
                 domain_padding: float | None = None) -> None:
        super().__init__()
        from neuralop.models import LocalNO

        modes = _ints("n_modes", n_modes)
        self.model = LocalNO(n_modes=modes, in_channels=in_channels, out_channels=out_channels,
                             hidden_channels=hidden_channels,
                             default_in_shape=_ints("default_in_shape", default_in_shape,
                                                    len(modes)),
                             n_layers=n_layers, disco_layers=disco_layers,
                             diff_layers=diff_layers, radius_cutoff=radius_cutoff,
                             conv_padding_mode=conv_padding_mode,
                             use_channel_mlp=use_channel_mlp,
                             channel_mlp_expansion=channel_mlp_expansion,
                             domain_padding=domain_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, *spatial] -> [B, C_out, *spatial]``."""
        return self.model(x)


def _samples(cloud) -> list:
    return cloud.to_data_list() if isinstance(cloud, Batch) else [cloud]


@register_model("nop_gino", family="mesh")
class NeuralopGINO(_NeuralopModule):
    """neuraloperator's ``GINO`` on batches of meshes of different sizes.

    GINO batches only samples that share one geometry, so each mesh of a PyG
    batch gets its own forward call. Coordinates are mapped isotropically into
    the unit box: ``(pos - lo) / L`` with ``lo`` the bounding box's lower corner
    minus ``latent_margin`` of its size and ``L`` its longest padded side; the
    latent queries are a regular ``latent_shape`` grid over the padded box and the
    GNO radii (``gno_radius``) are in these normalized units. Open3D and
    torch-scatter are not used (neither is installed; GINO falls back to torch).
    """

    def __init__(self, in_channels: int, out_channels: int, pos_dim: int = 2,
                 latent_shape: Sequence[int] = (48, 12), hidden_channels: int = 32,
                 n_layers: int = 4, n_modes: Sequence[int] | None = None,
                 gno_radius: float = 0.045, gno_embed_channels: int = 16,
                 in_gno_hidden: Sequence[int] = (64, 64),
                 out_gno_hidden: Sequence[int] = (128, 64), latent_margin: float = 0.05,
                 projection_channel_ratio: int = 2) -> None:
        super().__init__()
        from neuralop.models import GINO

        latent = _ints("latent_shape", latent_shape, pos_dim)
        modes = tuple(n // 2 for n in latent) if n_modes is None else _ints(
            "n_modes", n_modes, pos_dim)
        if not (isinstance(gno_radius, (int, float)) and gno_radius > 0):
            raise ValueError(f"gno_radius must be a positive number, got {gno_radius!r}")
        if not (isinstance(latent_margin, (int, float)) and 0 <= latent_margin < 1):
            raise ValueError(f"latent_margin must be in [0, 1), got {latent_margin!r}")
        self.latent_shape, self.latent_margin = latent, float(latent_margin)
        self.model = GINO(
            in_channels=in_channels, out_channels=out_channels, gno_coord_dim=pos_dim,
            in_gno_radius=float(gno_radius), out_gno_radius=float(gno_radius),
            fno_n_modes=modes, fno_hidden_channels=hidden_channels, fno_n_layers=n_layers,
            fno_in_channels=in_channels, gno_embed_channels=gno_embed_channels,
            in_gno_channel_mlp_hidden_layers=list(_ints("in_gno_hidden", in_gno_hidden)),
            out_gno_channel_mlp_hidden_layers=list(_ints("out_gno_hidden", out_gno_hidden)),
            projection_channel_ratio=projection_channel_ratio, gno_use_open3d=False,
            gno_use_torch_scatter=False)

    def normalized(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``[N, d]`` in the unit box and the latent queries ``[1, *latent, d]``."""
        lo, hi = pos.min(0).values, pos.max(0).values
        pad = (hi - lo) * self.latent_margin
        lo, hi = lo - pad, hi + pad
        scale = (hi - lo).max()
        axes = [torch.linspace(0.0, float((b - a) / scale), n, dtype=pos.dtype,
                               device=pos.device)
                for a, b, n in zip(lo, hi, self.latent_shape, strict=True)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        return (pos - lo) / scale, grid[None]

    def forward(self, cloud, x: torch.Tensor | None = None) -> torch.Tensor:
        """``cloud`` a PointCloud or PyG batch, ``x [N, C_in]`` -> ``[N, C_out]``."""
        x = cloud.x if x is None else x
        out, start = [], 0
        for sample in _samples(cloud):
            n = sample.num_nodes
            pos, grid = self.normalized(sample.pos.to(x.dtype))
            out.append(self.model(input_geom=pos[None], latent_queries=grid,
                                  output_queries=pos[None], x=x[start:start + n][None])[0])
            start += n
        return torch.cat(out)


class _SphereAdapter(nn.Module):
    """A torch-harmonics example model on ``[B, C, nlat, nlon]`` grids."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, nlat, nlon] -> [B, C_out, nlat, nlon]``."""
        return self.model(x)


@register_model("th_sfno", family="sphere")
class THSFNO(_SphereAdapter):
    """torch-harmonics' ``SphericalFourierNeuralOperator`` (examples/models/sfno.py).

    ``shape`` is the ``(nlat, nlon)`` grid of the data; ``scale_factor`` is its
    internal down-sampling (1: none; the example's default 3 is meant for
    721 x 1440 data); ``pos_embed`` its position embedding ("none", its default and
    that of its shallow-water model registry, "learnable lat", "learnable latlon",
    "spectral", "sequence").
    """

    def __init__(self, in_channels: int, out_channels: int, shape: Sequence[int],
                 grid: str = "equiangular", hidden_channels: int = 32, n_layers: int = 4,
                 scale_factor: int = 1, mlp_ratio: float = 2.0,
                 grid_internal: str | None = None, pos_embed: str = "none") -> None:
        super().__init__()
        from torch_harmonics.examples.models import SphericalFourierNeuralOperator

        self.model = SphericalFourierNeuralOperator(
            img_size=_ints("shape", shape, 2), grid=grid,
            grid_internal=grid if grid_internal is None else grid_internal,
            scale_factor=scale_factor, in_chans=in_channels, out_chans=out_channels,
            embed_dim=hidden_channels, num_layers=n_layers, mlp_ratio=mlp_ratio,
            pos_embed=pos_embed)


@register_model("th_lsno", family="sphere")
class THLocalSNO(_SphereAdapter):
    """torch-harmonics' ``LocalSphericalNeuralOperator`` (examples/models/lsno.py):
    SFNO blocks alternating with local DISCO blocks (Morlet basis)."""

    def __init__(self, in_channels: int, out_channels: int, shape: Sequence[int],
                 grid: str = "equiangular", hidden_channels: int = 32, n_layers: int = 4,
                 scale_factor: int = 2, mlp_ratio: float = 2.0,
                 grid_internal: str | None = None) -> None:
        super().__init__()
        from torch_harmonics.examples.models import LocalSphericalNeuralOperator

        self.model = LocalSphericalNeuralOperator(
            img_size=_ints("shape", shape, 2), grid=grid,
            grid_internal=grid if grid_internal is None else grid_internal,
            scale_factor=scale_factor, in_chans=in_channels, out_chans=out_channels,
            embed_dim=hidden_channels, num_layers=n_layers, mlp_ratio=mlp_ratio)


@register_model("th_s2unet", family="sphere")
class THSphericalUNet(_SphereAdapter):
    """torch-harmonics' ``SphericalUNet`` (examples/models/s2unet.py), DISCO down/up-sampling.

    ``hidden_channels`` is the width of the first level, doubled per level
    (``levels`` levels). Dropout is off (the example's 0.1 / 0.1 / 0.5 are meant
    for segmentation; no other model of a study is regularized).
    """

    def __init__(self, in_channels: int, out_channels: int, shape: Sequence[int],
                 grid: str = "equiangular", hidden_channels: int = 16, levels: int = 3,
                 depth: int = 1, grid_internal: str | None = None) -> None:
        super().__init__()
        from torch_harmonics.examples.models import SphericalUNet

        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive int, got {levels!r}")
        self.model = SphericalUNet(
            img_size=_ints("shape", shape, 2), grid=grid,
            grid_internal=grid if grid_internal is None else grid_internal,
            in_chans=in_channels, out_chans=out_channels,
            embed_dims=[hidden_channels * 2**i for i in range(levels)],
            depths=[depth] * levels, drop_conv_rate=0.0, drop_path_rate=0.0,
            drop_dense_rate=0.0)


PEER_MODELS = ("nop_fno", "nop_local_no", "nop_gino", "th_sfno", "th_lsno", "th_s2unet")


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the peer packages (None when one is missing)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for package in ("neuraloperator", "torch-harmonics", "torch"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


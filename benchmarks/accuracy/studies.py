"""The studies of issue 14: what is compared, on which data, with which budget.

Each function returns the full study or, with ``quick=True``, a small version that
runs in a few minutes on two cores (same models, tiny data, one seed, two epochs)
and checks the whole pipeline. A model is one :class:`ModelEntry` line: new model
families are added to a study's list by name and arguments.

Every model of a study is trained by the same trainer on the same data with the
same loss, optimizer, schedule and epochs; widths (``width_key``) are tuned so that
parameter counts match the reference model's within 10%, and every model gets the
same learning-rate search (``tune_values``: one run per value on the first seed, the
lowest validation loss wins). The cylinder_gap ablations use the shared 2e-3.
"""

from __future__ import annotations

from collections.abc import Callable

from .spec import Claim, DatasetSpec, ExtraEval, ModelEntry, StudySpec

__all__ = ["STUDIES", "get_study", "study_names"]

NOP = "neuraloperator"
TH = "torch-harmonics"
LOCALNO_PAPER = "Liu-Schiaffini et al., ICML 2024 (LocalNO)"
AMFNO_PAPER = "Xiao et al., NeurIPS 2024 (AM-FNO)"

# Trainer settings shared by the studies (lr, schedule); epochs and losses per study.
_TRAINER = {"batch_size": 8, "lr": 2.0e-3, "scheduler": "cosine", "warmup_steps": 20,
            "grad_clip": 1.0, "weight_decay": 1.0e-4, "device": "cpu"}


def _trainer(quick: bool, epochs: int, **extra) -> dict:
    return {**_TRAINER, **extra, "epochs": 2 if quick else epochs}


def _seeds(quick: bool) -> tuple[int, ...]:
    return (0,) if quick else (0, 1, 2)


def _tune(quick: bool) -> tuple[float, ...]:
    """Learning rates tried for every model: the shared 2e-3 and a four times smaller one
    (deep message-passing and U-Net models often want less than spectral ones)."""
    return (5e-4, 2e-3)


# ---------------------------------------------------------------------------- 1. sphere
def shallow_water(quick: bool = False) -> StudySpec:
    """SFNO vs LocalSFNO variants vs torch-harmonics' SFNO, LSNO and S2 U-Net (32 x 64)."""
    nlat = 16 if quick else 32
    shape = [nlat, 2 * nlat]
    frames = 5 if quick else 13
    n = 8 if quick else 36
    width = 12 if quick else 32
    lmax = nlat
    local = {"name": "local_sfno", "lmax": lmax, "hidden_channels": width, "n_layers": 4,
             "disco_radius": 0.3}
    datasets = {
        "train": DatasetSpec("swe", n, {"nlat": nlat, "n_frames": frames}),
        "res2x": DatasetSpec("swe", n, {"nlat": 2 * nlat, "n_frames": frames}),
    }
    models = (
        ModelEntry("SFNO", {"name": "sfno", "lmax": lmax, "hidden_channels": width,
                            "n_layers": 4}),
        ModelEntry("LocalSFNO (DISCO)", {**local, "diff_layers": False}),
        ModelEntry("LocalSFNO (differential)", {**local, "disco_layers": False}),
        ModelEntry("LocalSFNO", local),
        ModelEntry("SFNO (torch-harmonics)", {"name": "th_sfno", "shape": shape,
                                              "hidden_channels": width, "scale_factor": 1},
                   library=TH, note="scale_factor 1 (no internal down-sampling)"),
        ModelEntry("LSNO (torch-harmonics)", {"name": "th_lsno", "shape": shape,
                                              "hidden_channels": width, "scale_factor": 2},
                   library=TH, seeds=(0,) if quick else (0, 1),
                   note="scale_factor 2 (its CPU DISCO costs about 1 s per sample at 1); "
                        "0.6 s per sample here, so two seeds only"),
        ModelEntry("S2 U-Net (torch-harmonics)", {"name": "th_s2unet", "shape": shape,
                                                  "hidden_channels": 8, "levels": 3},
                   library=TH, note="3 levels, dropout off"),
    )
    ours = ("SFNO", "LocalSFNO (DISCO)", "LocalSFNO (differential)", "LocalSFNO")
    return StudySpec(
        name="swe", title="Shallow water on the rotating sphere",
        description=(f"Height, vorticity and divergence on a {nlat}x{2 * nlat} equiangular "
                     f"grid, one-hour steps from random initial states (torch-harmonics' "
                     f"spectral solver); {n} trajectories of {frames - 1} steps. Models "
                     f"predict the change over one hour; rollouts of {frames - 1} steps on "
                     f"the test trajectories. The {2 * nlat}x{4 * nlat} column evaluates our "
                     f"models, trained at {nlat}x{2 * nlat}, on trajectories simulated at "
                     f"twice the resolution (other random initial states; torch-harmonics' "
                     f"models are built for one grid)."),
        datasets=datasets, train_dataset="train", models=models, reference="SFNO",
        data={"input_steps": 1, "frame_step": 1},
        trainer=_trainer(quick, 12, loss="rel_l2"),
        evaluation={"split": "test", "rollout_steps": frames - 1, "prediction_files": 0},
        extra_evals=(ExtraEval("res2x", f"{2 * nlat}x{4 * nlat} zero-shot", "res2x",
                               2 * nlat, models=ours),),
        claims=(Claim("LocalSFNO", "SFNO", 0.50, LOCALNO_PAPER),
                Claim("LocalSFNO", "SFNO", 0.50, LOCALNO_PAPER, metric="rollout")),
        seeds=_seeds(quick), tune_values=_tune(quick))


def shallow_water_position(quick: bool = False) -> StudySpec:
    """Position information on the rotating sphere: what it does to SFNO and LocalSFNO.

    The swe study's data and training; our SFNO and LocalSFNO without position inputs,
    with the (x, y, z) input channels (our default) and with a learned zonal embedding,
    and torch-harmonics' SFNO without (its default and its shallow-water registry's) and
    with its learnable latitude embedding. Every layer of an SFNO without position
    information commutes with longitude shifts and its spherical convolutions with
    every rotation, while the Coriolis parameter of the rotating shallow-water equations
    depends on latitude: the hypotheses are that such a model cannot learn the rotation
    term, and that part of what the local layers buy on this data is position
    information (their kernels differ with latitude). A real weight per degree (our
    default) is also symmetric under east-west reflection while the flow is not (Rossby
    waves drift westward); torch-harmonics' complex weight per degree is not: the
    complex-weight rows test that.
    """
    base = shallow_water(quick)
    nlat = base.datasets["train"].params["nlat"]
    shape = [nlat, 2 * nlat]
    width = 12 if quick else 32
    ours = {"name": "sfno", "lmax": nlat, "hidden_channels": width, "n_layers": 4}
    local = {**ours, "name": "local_sfno", "disco_radius": 0.3}
    theirs = {"name": "th_sfno", "shape": shape, "hidden_channels": width, "scale_factor": 1}
    reference = "SFNO, (x, y, z) inputs"
    # torch-harmonics' SFNO block and layout: x + MLP(conv(x)) (no inner skip), MLP ratio 2,
    # complex weight per degree, linear encoder and decoder
    th_block = {"skip": None, "channel_mlp_skip": "identity", "channel_mlp_expansion": 2.0,
                "operator_type": "driscoll-healy-complex", "lifting_channel_ratio": 0.0,
                "projection_channel_ratio": 0.0}
    models = (
        ModelEntry(reference, ours, width_key=None,
                   note="our default: the unit vector of each point appended to the input"),
        ModelEntry("SFNO, no position", {**ours, "positional_embedding": None},
                   width_key=None),
        ModelEntry("SFNO, zonal embedding", {**ours, "positional_embedding": "zonal"},
                   width_key=None, note="a learned series of zonal harmonics per channel, "
                                        "added after the lifting"),
        ModelEntry("SFNO, complex weights, (x, y, z) inputs", {
            **ours, "operator_type": "driscoll-healy-complex"}, baseline=reference,
            note="one complex weight per degree, as torch-harmonics' SFNO: its imaginary part "
                 "tells east from west, which a real (zonal) kernel cannot"),
        ModelEntry("SFNO, complex weights, zonal embedding", {
            **ours, "operator_type": "driscoll-healy-complex", "positional_embedding": "zonal"},
            baseline="SFNO, zonal embedding"),
        ModelEntry("SFNO, wide channel MLP, (x, y, z) inputs", {
            **ours, "channel_mlp_expansion": 2.0}, baseline=reference,
            note="channel MLP of twice the width (torch-harmonics' mlp_ratio 2) instead of "
                 "half; width re-matched"),
        ModelEntry("SFNO, wide channel MLP, zonal embedding", {
            **ours, "channel_mlp_expansion": 2.0, "positional_embedding": "zonal"},
            baseline="SFNO, zonal embedding"),
        ModelEntry("SFNO, torch-harmonics' block, (x, y, z) inputs", {
            **ours, **th_block}, baseline=reference,
            note="torch-harmonics' block and layout in our SFNO: x + MLP(act(conv(x))) with an "
                 "identity residual, channel MLP of twice the width, complex weights, one "
                 "linear map in and out; width re-matched"),
        ModelEntry("SFNO, torch-harmonics' block, zonal embedding", {
            **ours, **th_block, "positional_embedding": "zonal"},
            baseline="SFNO, zonal embedding",
            note="the closest of our SFNOs to torch-harmonics' with its learnable latitude"),
        ModelEntry("LocalSFNO, (x, y, z) inputs", local,
                   note="the swe study's LocalSFNO (DISCO and differential layers)"),
        ModelEntry("LocalSFNO, torch-harmonics' block, (x, y, z) inputs", {**local, **th_block},
                   baseline="SFNO, torch-harmonics' block, (x, y, z) inputs",
                   note="what the local layers add to the better block"),
        ModelEntry("LocalSFNO, no position", {**local, "positional_embedding": None},
                   baseline="SFNO, no position"),
        ModelEntry("LocalSFNO, zonal embedding", {**local, "positional_embedding": "zonal"},
                   baseline="SFNO, zonal embedding"),
        ModelEntry("SFNO (torch-harmonics), no position", theirs, library=TH,
                   note="its default, as in the swe study"),
        ModelEntry("SFNO (torch-harmonics), learnable latitude", {
            **theirs, "pos_embed": "learnable lat"}, library=TH,
            baseline="SFNO (torch-harmonics), no position",
            note="its own LearnablePositionEmbedding, one value per latitude and channel"),
    )
    return StudySpec(
        name="swe_position", title="Shallow water: position information and kernel symmetry "
                                   "in SFNO and LocalSFNO",
        description=(base.description + " Our SFNO and LocalSFNO and torch-harmonics' SFNO "
                     "with and without position information, everything else unchanged (the "
                     "shared learning rate, no tuning; the LocalSFNO and torch-harmonics "
                     "widths matched to our SFNO's parameter count as in the swe study)."),
        datasets={"train": base.datasets["train"]}, train_dataset="train", models=models,
        reference=reference, data=base.data, trainer=base.trainer,
        evaluation=base.evaluation, seeds=(0,) if quick else (0, 1), budgets=("epochs",))


# ------------------------------------------------------------------------ 2. Navier-Stokes
def _ns_datasets(quick: bool) -> dict[str, DatasetSpec]:
    n = 6 if quick else 32
    frames = 4 if quick else 21
    fine = 32 if quick else 128
    base = {"solver_resolution": fine, "viscosity": 1e-4, "n_frames": frames}
    return {
        "fine": DatasetSpec("ns2d", n, {**base, "resolution": fine}),
        "mid": DatasetSpec("ns2d", n, {**base, "resolution": fine // 2}, stride_of="fine"),
        "coarse": DatasetSpec("ns2d", n, {**base, "resolution": fine // 4},
                              stride_of="fine"),
    }


def navier_stokes(quick: bool = False) -> StudySpec:
    """FNO vs LocalNO variants vs UNet vs neuraloperator's FNO and LocalNO (64 x 64)."""
    res = 16 if quick else 64
    modes = [8, 8] if quick else [16, 16]
    width = 8 if quick else 32
    local = {"name": "local_no", "n_modes": modes, "hidden_channels": width}
    models = (
        ModelEntry("FNO", {"name": "fno", "n_modes": modes, "hidden_channels": width}),
        ModelEntry("LocalNO (DISCO)", {**local, "diff_layers": False}),
        ModelEntry("LocalNO (differential)", {**local, "disco_layers": False}),
        ModelEntry("LocalNO", local),
        ModelEntry("UNet", {"name": "unet", "hidden_channels": 8, "depth": 2 if quick else 3,
                            "padding_mode": "circular"}),
        ModelEntry("FNO (neuraloperator)", {"name": "nop_fno", "n_modes": [modes[0] + 1,
                                                                           modes[1]],
                                            "hidden_channels": width}, library=NOP,
                   note="n_modes (17, 16): the same kept modes as ours"),
        ModelEntry("LocalNO (neuraloperator)", {
            "name": "nop_local_no", "n_modes": [modes[0] + 1, modes[1]],
            "default_in_shape": [res, res], "hidden_channels": width}, library=NOP,
            note="its default DISCO radius (one cell)"),
    )
    datasets = _ns_datasets(quick)
    frames = datasets["fine"].params["n_frames"]
    steps = min(10, frames - 1)
    return StudySpec(
        name="ns2d", title="2D Navier-Stokes (forced turbulence)",
        description=(f"Vorticity on the periodic unit square, viscosity 1e-4 (the FNO "
                     f"paper's hardest setting), FNO forcing, solved pseudo-spectrally at "
                     f"{datasets['fine'].params['solver_resolution']}^2 and stored at "
                     f"{res}^2; {datasets['fine'].n_samples} trajectories of {frames - 1} "
                     f"time units. Models map the vorticity at t to t + 1 (residual), "
                     f"trained with the relative H1 loss and input noise 0.02 (as in "
                     f"examples/configs/ns2d.yaml); {steps}-step rollouts on the test "
                     f"trajectories."),
        datasets=datasets, train_dataset="mid", models=models, reference="FNO",
        data={"input_steps": 1, "frame_step": 1},
        trainer=_trainer(quick, 8, loss="rel_h1", noise_std=0.02),
        evaluation={"split": "test", "rollout_steps": steps, "prediction_files": 0},
        claims=(Claim("LocalNO", "FNO", 0.34, LOCALNO_PAPER),),
        seeds=_seeds(quick), tune_values=_tune(quick))


def navier_stokes_superresolution(quick: bool = False) -> StudySpec:
    """Trained at 32 x 32, evaluated zero-shot at 64 x 64 and 128 x 128 (AM-FNO's table)."""
    datasets = _ns_datasets(quick)
    coarse = datasets["coarse"].params["resolution"]
    modes = [4, 4] if quick else [16, 16]
    width = 8 if quick else 32
    models = (
        ModelEntry("FNO", {"name": "fno", "n_modes": modes, "hidden_channels": width,
                           "positional_embedding": None},
                   note="no positional embedding (its raw coordinates jump at the wrap)"),
        ModelEntry("AM-FNO (MLP, Chebyshev)", {"name": "amfno", "hidden_channels": width,
                                               "positional_embedding": None},
                   note="all frequencies of the grid"),
        ModelEntry("LocalNO", {"name": "local_no", "n_modes": modes,
                               "hidden_channels": width}),
        ModelEntry("FNO (neuraloperator)", {"name": "nop_fno", "n_modes": [modes[0] + 1,
                                                                           modes[1]],
                                            "hidden_channels": width}, library=NOP),
        ModelEntry("LocalNO (neuraloperator)", {
            "name": "nop_local_no", "n_modes": [modes[0] + 1, modes[1]],
            "default_in_shape": [coarse, coarse], "hidden_channels": width}, library=NOP),
    )
    mid, fine = datasets["mid"].params["resolution"], datasets["fine"].params["resolution"]
    return StudySpec(
        name="ns2d_superres", title="2D Navier-Stokes: zero-shot super-resolution",
        description=(f"The Navier-Stokes trajectories of the ns2d study stored at {coarse}^2, "
                     f"{mid}^2 and {fine}^2 (every k-th point of the same "
                     f"{fine}^2 solution): trained at {coarse}^2, the same test trajectories "
                     f"evaluated at {mid}^2 and {fine}^2 without retraining (one step)."),
        datasets=datasets, train_dataset="coarse", models=models, reference="FNO",
        data={"input_steps": 1, "frame_step": 1},
        trainer=_trainer(quick, 8, loss="rel_h1", noise_std=0.02),
        evaluation={"split": "test", "rollout_steps": 0, "prediction_files": 0},
        extra_evals=(ExtraEval("res_mid", f"{mid}x{mid} zero-shot", "mid", mid),
                     ExtraEval("res_fine", f"{fine}x{fine} zero-shot", "fine", fine)),
        claims=(Claim("AM-FNO (MLP, Chebyshev)", "FNO", 0.31, AMFNO_PAPER + ", up to"),),
        seeds=_seeds(quick), tune_values=_tune(quick), readme_plot="resolution")


# ------------------------------------------------------------------------------- 3. Darcy
def darcy(quick: bool = False) -> StudySpec:
    """FNO vs AM-FNO (MLP/KAN, Chebyshev/Fourier) vs LocalNO vs Hartley FNO vs TFNO vs
    neuraloperator's FNO."""
    res = 17 if quick else 64
    modes = [8, 8] if quick else [16, 16]
    width = 8 if quick else 32
    pad = 0.125
    amfno = {"name": "amfno", "hidden_channels": width, "domain_padding": pad}
    models = (
        ModelEntry("FNO", {"name": "fno", "n_modes": modes, "hidden_channels": width,
                           "domain_padding": pad}),
        ModelEntry("AM-FNO (MLP, Chebyshev)", {**amfno, "kernel_network": "mlp",
                                               "embedding": "chebyshev"}),
        ModelEntry("AM-FNO (MLP, Fourier)", {**amfno, "kernel_network": "mlp",
                                             "embedding": "fourier"}),
        ModelEntry("AM-FNO (KAN)", {**amfno, "kernel_network": "kan"},
                   note="the KAN reads the frequency itself (no embedding)"),
        ModelEntry("LocalNO", {"name": "local_no", "n_modes": modes, "hidden_channels": width,
                               "domain_padding": pad}),
        ModelEntry("FNO (Hartley)", {"name": "fno", "n_modes": modes, "hidden_channels": width,
                                     "domain_padding": pad, "basis": "hartley"},
                   note="real Hartley multipliers on the same modes, width matched"),
        ModelEntry("TFNO (Tucker, rank 0.25)", {"name": "tfno", "n_modes": modes,
                                                "hidden_channels": width, "domain_padding": pad,
                                                "factorization": "tucker", "rank": 0.25},
                   width_key=None,
                   note="FNO's width with Tucker-factorized spectral weights (not matched: "
                        "the point is fewer parameters)"),
        ModelEntry("FNO (neuraloperator)", {"name": "nop_fno", "n_modes": [modes[0] + 1,
                                                                           modes[1]],
                                            "hidden_channels": width,
                                            "domain_padding": pad}, library=NOP),
    )
    n = 24 if quick else 200
    return StudySpec(
        name="darcy", title="Darcy flow",
        description=(f"-div(a grad u) = 1 on the unit square, u = 0 on the boundary, "
                     f"thresholded Gaussian random permeability (12 / 3), {res}^2 "
                     f"finite-volume solutions; {n} samples. Models map a to u (domain "
                     f"padding 0.125: the problem is not periodic); relative L2 loss."),
        datasets={"train": DatasetSpec("darcy", n, {"resolution": res})},
        train_dataset="train", models=models, reference="FNO",
        data={}, trainer=_trainer(quick, 20, loss="rel_l2"),
        evaluation={"split": "test", "prediction_files": 0},
        claims=(Claim("AM-FNO (MLP, Chebyshev)", "FNO", 0.31, AMFNO_PAPER + ", up to"),),
        seeds=_seeds(quick), tune_values=_tune(quick), readme_plot="efficiency")


# ---------------------------------------------------------------------------- 4. cylinder
def _cylinder_datasets(quick: bool) -> dict[str, DatasetSpec]:
    n = 6 if quick else 40
    frames = 5 if quick else 31
    coarse = {"target_vertices": 500 if quick else 1200, "n_frames": frames,
              "spin_up": 0.5 if quick else 2.0}
    fine = {"target_vertices": 1500 if quick else 5000, "dt": 0.0025,
            "n_frames": 4 if quick else 22, "spin_up": coarse["spin_up"]}
    return {"coarse": DatasetSpec("cylinder", n, coarse),
            "fine": DatasetSpec("cylinder", n, fine)}


def _CYLINDER_DATA(quick: bool) -> dict:  # noqa: N802 - a constant of the two studies
    return {"input_steps": 1, "frame_step": 1, "max_train_samples": 48 if quick else 240,
            "max_val_samples": 24 if quick else 80}


def _cylinder_trainer(quick: bool) -> dict:
    return _trainer(quick, 8, loss="rel_l2", noise_std=0.02, batch_size=4)


def _mesh_no(quick: bool, processor: str, **extra) -> dict:
    latent = [24, 8] if quick else [48, 12]
    modes = [8, 4] if quick else [20, 8]
    return {"name": "mesh_no", "latent_shape": latent, "n_modes": modes,
            "hidden_channels": 8 if quick else 24, "n_layers": 4, "processor": processor,
            **extra}


def cylinder(quick: bool = False) -> StudySpec:
    """MeshNO (FNO / AM-FNO / LocalNO processors, mesh-level layers) vs MeshGraphNet vs GINO."""
    datasets = _cylinder_datasets(quick)
    # fixed-radius mesh layers: the differential stencil needs neighbours in two directions
    # at every vertex, so the radius must exceed the longest edges (far from the cylinder)
    mesh_radius = 0.15 if quick else 0.12
    slow_seeds = (0,) if quick else (0, 1)
    models = (
        ModelEntry("MeshNO (FNO)", _mesh_no(quick, "fno")),
        ModelEntry("MeshNO (AM-FNO)", _mesh_no(quick, "amfno")),
        ModelEntry("MeshNO (LocalNO)", _mesh_no(quick, "local_no")),
        ModelEntry("MeshNO (FNO + mesh layers)", _mesh_no(
            quick, "fno", mesh_layers=True, mesh_radius=mesh_radius),
            note=f"DISCO + differential layers on the mesh, radius {mesh_radius} m"),
        ModelEntry("MeshNO (LocalNO + mesh layers)", _mesh_no(
            quick, "local_no", mesh_layers=True, mesh_radius=mesh_radius)),
        ModelEntry("MeshGraphNet", {"name": "mesh_graph_net", "hidden_channels": 32,
                                    "n_layers": 4 if quick else 8},
                   note="about 20x the time per epoch of MeshNO at this parameter count "
                        "(8 blocks of width 80 on every mesh edge)"),
        ModelEntry("GINO (neuraloperator)", {
            "name": "nop_gino", "latent_shape": [24, 8] if quick else [48, 12],
            "n_modes": [8, 4] if quick else [20, 8], "hidden_channels": 8 if quick else 24,
            "n_layers": 4}, library=NOP, seeds=slow_seeds,
            note="one forward per mesh; GNO radius 2 latent cells; about 35x the time per "
                 "epoch of MeshNO (its neighbour search and GNO integrals run in every "
                 "step), so two seeds"),
    )
    coarse, fine = datasets["coarse"].params, datasets["fine"].params
    steps = coarse["n_frames"] - 1 if quick else 20
    fine_steps = fine["n_frames"] - 1 if quick else 20
    return StudySpec(
        name="cylinder", title="Flow past a cylinder on unstructured meshes",
        description=(f"Our P2-P1 FEM solver in the DFG channel (2.2 x 0.41 m), Re 60-200, "
                     f"cylinder centre and radius drawn per trajectory, a different mesh of "
                     f"about {coarse['target_vertices']} vertices per trajectory; "
                     f"{datasets['coarse'].n_samples} trajectories of "
                     f"{coarse['n_frames'] - 1} steps of 0.02 s after a "
                     f"{coarse['spin_up']} s spin-up. Models predict the change of (u, v, p) "
                     f"over one step from the state, the standardized Reynolds number and "
                     f"node types; {steps}-step rollouts on the test trajectories. Drag and "
                     f"lift are computed from predicted and true vertex fields with the same "
                     f"surface integral. Zero-shot: the same flows (Reynolds number, "
                     f"cylinder) simulated on meshes of about {fine['target_vertices']} "
                     f"vertices."),
        datasets=datasets, train_dataset="coarse", models=models,
        reference="MeshNO (FNO)",
        data=_CYLINDER_DATA(quick),
        trainer=_cylinder_trainer(quick),
        evaluation={"split": "test", "rollout_steps": steps, "max_samples": 40 if quick
                    else 150, "prediction_files": 100},
        extra_evals=(ExtraEval("fine", f"{fine['target_vertices']}-vertex meshes, zero-shot",
                               "fine", fine["target_vertices"], rollout_steps=fine_steps,
                               forces=True),),
        forces=True,
        claims=(Claim("MeshNO (LocalNO)", "MeshNO (FNO)", 0.42, LOCALNO_PAPER),
                Claim("MeshNO (LocalNO)", "MeshNO (FNO)", 0.42, LOCALNO_PAPER,
                      metric="rollout")),
        seeds=_seeds(quick), tune_values=_tune(quick))


def cylinder_gap(quick: bool = False) -> StudySpec:
    """Why the LocalNO processor gains little on the cylinder: one factor at a time.

    FNO / LocalNO processor pairs (parameters not re-matched, so that only the
    named factor changes): the latent grid's resolution, the processor's DISCO in
    physical (isotropic) coordinates with two radii, a larger basis, and four times
    the training windows. Mesh-level local layers are in the cylinder study.
    """
    datasets = {"coarse": _cylinder_datasets(quick)["coarse"]}
    fine_latent = {"latent_shape": [48, 16] if quick else [96, 24]}
    # the latent box is the channel plus 5% per side: 2.42 x 0.451 m
    box = [[0.0, 2.42], [0.0, 0.451]]
    iso = {"domain": box, "disco_radius": 0.1}
    base_fno, base_local = "FNO, 48x12 (base)", "LocalNO, 48x12 (base)"

    def entry(label: str, processor: str, baseline: str | None = None, data=None,
              note: str = "", **extra) -> ModelEntry:
        return ModelEntry(label, _mesh_no(quick, processor, **extra), width_key=None,
                          baseline=baseline, data=data, note=note)

    more = {"max_train_samples": 96 if quick else 1200}
    models = (
        entry(base_fno, "fno"),
        entry(base_local, "local_no", base_fno,
              note="processor DISCO on the unit box: radius 1/16 of each side, 3 x 0.75 "
                   "latent cells"),
        entry("FNO, 96x24 latent", "fno", **fine_latent),
        entry("LocalNO, 96x24 latent", "local_no", "FNO, 96x24 latent", **fine_latent),
        entry("LocalNO, physical r = 0.1 m", "local_no", base_fno,
              processor_config=iso, note="processor in metres (isotropic), DISCO radius "
                                         "0.1 m, about 2 latent cells"),
        entry("LocalNO, physical r = 0.2 m", "local_no", base_fno,
              processor_config={**iso, "disco_radius": 0.2}),
        entry("LocalNO, physical r = 0.1 m, basis (3, 6)", "local_no", base_fno,
              processor_config={**iso, "disco_kernel_shape": [3, 6]}),
        entry("FNO, 3.2x windows", "fno", data=more,
              note="all 960 training windows instead of 300"),
        entry("LocalNO, 3.2x windows", "local_no", "FNO, 3.2x windows", data=more),
    )
    return StudySpec(
        name="cylinder_gap", title="Cylinder: where does the LocalNO processor's gain go?",
        description=("The cylinder study's data and training; MeshNO with an FNO or a LocalNO "
                     "processor, changing one factor at a time (each LocalNO row's gain is "
                     "measured against its FNO twin; parameter counts are not re-matched, "
                     "see the params column)."),
        datasets=datasets, train_dataset="coarse", models=models, reference=base_fno,
        data=_CYLINDER_DATA(quick), trainer=_cylinder_trainer(quick),
        evaluation={"split": "test", "rollout_steps": 4 if quick else 20,
                    "max_samples": 40 if quick else 150, "prediction_files": 0},
        seeds=(0,) if quick else (0, 1), budgets=("epochs",))


STUDIES: dict[str, Callable[[bool], StudySpec]] = {
    "swe": shallow_water,
    "swe_position": shallow_water_position,
    "ns2d": navier_stokes,
    "ns2d_superres": navier_stokes_superresolution,
    "darcy": darcy,
    "cylinder": cylinder,
    "cylinder_gap": cylinder_gap,
}


def study_names() -> list[str]:
    """Names of the studies, in the order ``all`` runs them."""
    return list(STUDIES)


def get_study(name: str, quick: bool = False) -> StudySpec:
    """The study ``name`` (full, or its quick version).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the studies).
    """
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; the studies are {study_names()}")
    return STUDIES[name](quick)


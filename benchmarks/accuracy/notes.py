"""What the studies found, in words, for the README section (numbers stay in the tables).

Each entry is shown under its study's table by :func:`~benchmarks.accuracy.report.write_readme`.
The text holds no numbers: every number of the section comes from a result file.
"""

from __future__ import annotations

__all__ = ["FINDINGS"]

FINDINGS: dict[str, str] = {
    "swe": (
        "What we found: the local layers lower SFNO's error, the differential layer alone "
        "as much as both together, but by less than the paper's half. torch-harmonics' "
        "SFNO trails every other model here because it is given no position information "
        "(its default), and our SFNO's block is not the best one for this data: the "
        "swe_position study below shows both, and that our LocalSFNO with "
        "torch-harmonics' block and (x, y, z) inputs has the lowest errors of all models "
        "tried. torch-harmonics' LSNO costs far more time per epoch on CPU; at equal "
        "wall-clock the plain SFNO is the model to use on this machine."
    ),
    "swe_position": (
        "What we found: without position information an SFNO cannot tell latitudes apart "
        "(every layer commutes with rotations, while the Coriolis term of the rotating "
        "shallow-water equations depends on latitude): ours and torch-harmonics' then have "
        "about twice the error, and the local layers help much less. The rest of the gap "
        "between our default SFNO and torch-harmonics' SFNO with its learnable latitude "
        "embedding is the block: neither a complex weight per degree (which halves the "
        "rollout error but barely changes the one-step error), nor a wider channel MLP, nor "
        "our zonal embedding closes it, while torch-harmonics' block and layout in "
        "our SFNO (an identity residual around the channel MLP of the convolution's output, "
        "MLP ratio 2, complex weights, one linear map in and out) with (x, y, z) inputs "
        "matches it (within the two seeds' spread), and LocalSFNO with that block is the "
        "best model of both sphere studies, one-step and in rollouts. With that block the "
        "local layers still cut the one-step error by about a seventh and the rollout error "
        "by about a fifth. Our default block (neuraloperator's FNO layout) is the weaker "
        "choice on this data; the options that reproduce torch-harmonics' block are "
        "skip=None, channel_mlp_skip='identity', channel_mlp_expansion=2, "
        "operator_type='driscoll-healy-complex', "
        "lifting_channel_ratio=0 and projection_channel_ratio=0."
    ),
    "ns2d": (
        "What we found: on this data and budget the LocalNO paper's gain over FNO does not "
        "reproduce; the local layers do not lower the one-step error, though the "
        "differential layer gives the most stable rollouts among ours. neuraloperator's "
        "LocalNO has the lowest one-step error but its rollouts drift fastest, as do "
        "neuraloperator's FNO's (trained identically): our FNO and LocalNO variants roll out "
        "several times more accurately. At equal wall-clock FNO wins: the local layers "
        "cost more per epoch than they give."
    ),
    "darcy": (
        "What we found: AM-FNO with an MLP on Chebyshev or Fourier frequency embeddings has a "
        "clearly lower error than FNO at equal epochs, more than the AM-FNO paper's 'up to "
        "31%', at about five times FNO's time per epoch on CPU; the KAN variant gains less at"
        " less cost. At equal wall-clock this reverses: the AM-FNOs get a fraction of FNO's "
        "epochs and trail it, and neuraloperator's FNO, a little ahead of ours at equal epochs "
        "too, is the most accurate model. LocalNO's local layers help little on this problem at"
        " equal epochs and cost more than they give at equal wall-clock. The Hartley-basis FNO "
        "and the Tucker-factorized TFNO (a quarter of the parameters) trail FNO. The learning "
        "rate matters as much as the architecture: every model did better with the larger of "
        "the two rates tried, FNO by almost a third (tuning file)."
    ),
    "ns2d_superres": (
        "What we found: AM-FNO's claim holds here: AM-FNO (MLP, Chebyshev) has the lowest "
        "error at the training resolution and keeps it unchanged at 64^2 and 128^2, as both "
        "FNOs keep theirs (their kept modes do not change with the grid). Our FNO trails "
        "neuraloperator's at 32^2 (at 64^2, in the ns2d study, they are equal). Both "
        "LocalNOs lower the error at the training resolution but lose it zero-shot on "
        "finer grids, ours more than neuraloperator's, most likely because the 128^2 "
        "fields hold turbulent scales that the subsampled 32^2 training fields do not: the "
        "local kernels respond to them, the spectral layers, truncated to the trained "
        "modes, do not. At equal wall-clock AM-FNO's lead over our FNO nearly vanishes (it "
        "costs almost three times FNO's time per epoch), neuraloperator's FNO is the most "
        "accurate, and our LocalNO, with half of FNO's epochs, trails every other model."
    ),
    "cylinder": (
        "What we found: with local layers in the latent processor the LocalNO paper's gain does"
        " not reproduce (about a tenth, a fraction of the claim; the cylinder_gap study below "
        "says why: the latent grid limits both processors alike). Local layers on the mesh "
        "itself, below the latent grid, help more: DISCO and differential layers at the "
        "vertices give the lowest one-step errors, with the LocalNO processor about half the "
        "paper's gain, on the training meshes and zero-shot on meshes four times finer. They do"
        " not help the rollouts: the models with mesh layers start best but drift faster after "
        "about ten steps, and the AM-FNO processor has the lowest rollout errors. Every MeshNO "
        "variant beats the peers' models at equal epochs and parameter count: neuraloperator's "
        "GINO and our MeshGraphNet have about one and a half times the one-step error and twice"
        " the rollout error, at twenty to thirty-five times the time per epoch on CPU; "
        "MeshGraphNet, whose messages are summed over mesh neighbours, does not carry over to "
        "finer meshes (its zero-shot error doubles), while GINO and every MeshNO keep theirs. "
        "We lose on forces: GINO's predicted fields give the most accurate drag coefficient, "
        "and the drag and lift errors of our models vary much from seed to seed, so a lower "
        "field error does not by itself give better forces. At equal wall-clock MeshNO with the"
        " FNO processor is the model to use: the local layers and AM-FNO cost about twice its "
        "time per epoch and lose their edge, and the peers do not finish a second epoch."
    ),
    "cylinder_gap": (
        "What we found: the LocalNO processor's gain over the FNO processor stays small for "
        "every factor we changed, a few per cent in one-step error and up to about a sixth in "
        "rollout error. A finer latent grid lowers both errors and widens the gain a little; "
        "a DISCO radius and basis set in metres (isotropic in the channel) instead of the "
        "unit box, or a larger basis, add a few points; three times the training windows "
        "lower both errors by about a third but leave the gain where it was. The latent "
        "grid limits both processors alike: merely carrying the true one-step change "
        "through the 48x12 grid and back loses about as much as the models' whole error "
        "(latent_floor table; the models do a little better through their mesh-level "
        "path), and that loss is spread over the channel rather than concentrated at the "
        "cylinder, so a processor with local layers on the same grid has little left to "
        "win. The mesh-level local layers of the cylinder study work on the mesh itself, "
        "below the latent grid's resolution."
    ),
}

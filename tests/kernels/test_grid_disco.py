"""GridDiscoKernel: the precomputed FFT form of a DISCO basis on a regular grid."""

import pytest
import torch

from geo_neuralop.geometry import GridSpec
from geo_neuralop.kernels import GridDiscoKernel, PiecewiseLinearBasis


def test_bad_kernels_and_inputs():
    basis = PiecewiseLinearBasis((3, 4))
    grid = GridSpec((8, 8), periodic=True)
    with pytest.raises(ValueError, match="spans more than the periodic axis 0"):
        GridDiscoKernel(basis, 0.6, grid)
    with pytest.raises(ValueError, match="normalization must be"):
        GridDiscoKernel(basis, 0.1, grid, "sum")
    with pytest.raises(TypeError, match="grid must be a GridSpec"):
        GridDiscoKernel(basis, 0.1, (8, 8))
    kernel = GridDiscoKernel(basis, 0.1, grid)
    with pytest.raises(ValueError, match=r"x has grid \(8, 9\)"):
        kernel.responses(torch.zeros(1, 1, 8, 9))


def test_spectrum_refuses_what_is_not_a_fourier_multiplier():
    basis = PiecewiseLinearBasis((3, 4))
    shape = (18, 14)
    kernel = GridDiscoKernel(basis, 0.3, GridSpec(shape, [(0.0, 3.0), (0.0, 1.0)], True),
                             dtype=torch.float64)
    weight = torch.randn(6, 2, kernel.kernel_size, dtype=torch.float64)
    x_hat = torch.fft.rfftn(torch.randn(3, 4, *shape, dtype=torch.float64), dim=(2, 3),
                            norm="forward")
    bounded = GridDiscoKernel(basis, 0.3, GridSpec(shape, [(0.0, 3.0), (0.0, 1.0)],
                                                   (True, False)))
    assert kernel.fourier_multiplier and not bounded.fourier_multiplier
    with pytest.raises(ValueError, match="fully periodic grid"):
        bounded.spectrum(x_hat, weight, 2)
    with pytest.raises(ValueError, match="x_hat must be a complex rfftn"):
        kernel.spectrum(x_hat[..., :-1], weight, 2)
    with pytest.raises(ValueError, match="x_hat has 4 channels, the weight expects 2"):
        kernel.spectrum(x_hat, weight, 1)

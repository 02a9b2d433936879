"""CUDA paths of the kernels: sparse operators (cuSPARSE, 32-bit indices) and ring kernels
(spectra recomputed on the device) equal the CPU results; skipped without a GPU. The
benchmark script for GPUs exits cleanly without one."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

from geo_neuralop.geometry import jittered_rectangle_mesh
from geo_neuralop.kernels import PiecewiseLinearBasis, RingStencil, SphereRingKernel, disco_kernel

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_sparse_operator_on_cuda_equals_cpu():
    kernel = disco_kernel(jittered_rectangle_mesh((20, 15)), kernel_shape=(3, 4), radius=0.15)
    x = torch.randn(300, 8, dtype=torch.float64, requires_grad=True)
    xc = x.detach().cuda().requires_grad_()
    a, b = kernel.responses(x), kernel.responses(xc)
    torch.testing.assert_close(b.cpu(), a)
    ga = torch.autograd.grad(a.square().sum(), x)[0]
    gb = torch.autograd.grad(b.square().sum(), xc)[0]
    torch.testing.assert_close(gb.cpu(), ga)


@cuda
@pytest.mark.parametrize("stored", [1 << 30, 0])
def test_ring_kernel_on_cuda_equals_cpu(stored):
    stencils = [RingStencil(PiecewiseLinearBasis((3, 4)), 0.3),
                RingStencil(PiecewiseLinearBasis((3, 4)), 0.3, "nodal", differential=True)]
    grid = (33, 64, "equiangular")
    cpu = SphereRingKernel(grid, grid, stencils, dtype=torch.float64, max_stored_bytes=stored)
    gpu = SphereRingKernel(grid, grid, stencils, dtype=torch.float64, device="cuda",
                           max_stored_bytes=stored)
    x = torch.randn(2, 3, 33, 64, dtype=torch.float64)
    w = torch.randn(4, 3, cpu.kernel_size, dtype=torch.float64)
    torch.testing.assert_close(gpu.apply(x.cuda(), w.cuda()).cpu(), cpu.apply(x, w))


def test_gpu_benchmark_exits_cleanly_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu.py"])
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    assert stop.value.code == 0
    assert "needs a CUDA device" in capsys.readouterr().out

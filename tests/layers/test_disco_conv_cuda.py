"""DiscoConv on a GPU equals the CPU result (skipped without CUDA)."""

import math

import pytest
import torch

from geo_neuralop.geometry import jittered_rectangle_mesh, regular_grid, sphere_grid
from geo_neuralop.layers import DiscoConv, PointDifferentialConv

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_forward_and_backward_equal_cpu(dtype):
    torch.manual_seed(0)
    src = sphere_grid(32, 64, "legendre-gauss")
    dst = sphere_grid(16, 32, "legendre-gauss")
    conv = DiscoConv(8, 4, (5, 4), radius=math.pi / 15, groups=2).to(dtype)
    kernel = conv.build_kernel(src, dst)
    x = torch.randn(3, src.num_nodes, 8, dtype=dtype, requires_grad=True)
    out = conv(x, kernel)
    out.square().sum().backward()
    grads = [x.grad.clone(), conv.weight.grad.clone()]

    conv_gpu = conv.cuda()
    conv_gpu.zero_grad()
    x_gpu = x.detach().cuda().requires_grad_()
    out_gpu = conv_gpu(x_gpu, kernel)
    out_gpu.square().sum().backward()
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-10,
                                                                          "atol": 1e-10}
    torch.testing.assert_close(out_gpu.cpu(), out.detach(), **tol)
    torch.testing.assert_close(x_gpu.grad.cpu(), grads[0], **tol)
    torch.testing.assert_close(conv_gpu.weight.grad.cpu(), grads[1], **tol)


@cuda
def test_cuda_differential_conv_on_mesh():
    mesh = jittered_rectangle_mesh((30, 30), seed=1, dtype=torch.float64)
    conv = PointDifferentialConv(2, 3, (3, 4), radius=0.12).double()
    kernel = conv.build_kernel(mesh)
    x = torch.randn(2, mesh.num_nodes, 2, dtype=torch.float64)
    torch.testing.assert_close(conv.cuda()(x.cuda(), kernel).cpu(), conv.cpu()(x, kernel))
    grid = regular_grid((8, 8))
    assert grid.pos.device.type == "cpu"  # geometry stays on the CPU; kernels move lazily

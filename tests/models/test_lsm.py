"""Latent Spectral Model: the neural spectral block equals its definition computed with explicit
loops, the model learns an operator on a grid of any size, runs inside MeshNO on meshes, and
refuses what it cannot handle."""

import math

import pytest
import torch

from geo_neuralop.geometry import jittered_rectangle_mesh
from geo_neuralop.layers import NeuralSpectralBlock2d
from geo_neuralop.layers.neural_spectral_block import largest_divisor_at_most
from geo_neuralop.models import LSM, MeshNO, get_model


def _softmax(values):
    e = [math.exp(v - max(values)) for v in values]
    return [v / sum(e) for v in e]


def _block_by_loops(block: NeuralSpectralBlock2d, x: torch.Tensor) -> torch.Tensor:
    """The block's definition, one patch, head, token and point at a time (plain floats)."""
    b, c, h, w = x.shape
    p1, p2 = block.patches((h, w))
    heads, d, n_tok = block.heads, c // block.heads, block.num_tokens
    kv = block.encoder_attn(x).detach()  # [B, 2C, H, W], channel 2 * (head * d + j) + (0 k, 1 v)
    q_all = block.decoder_attn(x).detach()
    latent = block.latent.detach()
    weights, k_max = block.weights.detach(), block.num_basis
    out = x.detach().clone()
    for bi in range(b):
        for i0 in range(0, h, p1):
            for j0 in range(0, w, p2):
                points = [(i, j) for i in range(i0, i0 + p1) for j in range(j0, j0 + p2)]
                tokens = torch.zeros(c, n_tok, dtype=x.dtype)
                for hd in range(heads):
                    for t in range(n_tok):
                        lat = latent[hd, t]
                        keys = [kv[bi, [2 * (hd * d + m) for m in range(d)], i, j]
                                for i, j in points]
                        vals = [kv[bi, [2 * (hd * d + m) + 1 for m in range(d)], i, j]
                                for i, j in points]
                        a = _softmax([float(lat @ k) for k in keys])
                        tok = sum(ai * v for ai, v in zip(a, vals, strict=True)) + lat
                        tokens[hd * d:(hd + 1) * d, t] = tok
                new = tokens.clone()
                for ch in range(c):
                    for t in range(n_tok):
                        z = float(tokens[ch, t])
                        new[ch, t] = z + sum(
                            weights[ch, k] * math.sin(k / k_max * math.pi * z)
                            + weights[ch, k_max + k] * math.cos(k / k_max * math.pi * z)
                            for k in range(k_max))
                for i, j in points:
                    for hd in range(heads):
                        q = q_all[bi, hd * d:(hd + 1) * d, i, j]
                        toks = [new[hd * d:(hd + 1) * d, t] for t in range(n_tok)]
                        a = _softmax([float(q @ tk) for tk in toks])
                        out[bi, hd * d:(hd + 1) * d, i, j] += sum(
                            ai * tk for ai, tk in zip(a, toks, strict=True))
    return out


def test_neural_spectral_block_equals_its_definition(float64):
    torch.manual_seed(0)
    block = NeuralSpectralBlock2d(8, num_basis=5, patch_size=3, num_tokens=3, heads=2).double()
    x = torch.randn(2, 8, 6, 4)  # patches 3 x 2 (2 is the largest divisor of 4 up to 3)
    assert block.patches((6, 4)) == (3, 2)
    expected = _block_by_loops(block, x)
    assert (block(x).detach() - expected).abs().max() < 1e-12
    assert largest_divisor_at_most(12, 5) == 4 and largest_divisor_at_most(7, 4) == 1


def test_lsm_learns_an_operator_on_any_grid_size():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 20, 12, generator=g)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    y = torch.nn.functional.conv2d(x, kernel, padding=1) + x.mean(dim=(2, 3), keepdim=True)
    model = LSM(1, 1, hidden_channels=16, n_layers=2, heads=4, num_basis=6)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = (model(x) - y).square().mean() / y.square().mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.15 * losses[0], (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():  # samples are independent (batch statistics frozen in eval)
        assert (model(x[:3])[1] - model(x[1:2])[0]).abs().max() < 1e-5


def test_mesh_no_with_an_lsm_processor():
    torch.manual_seed(0)
    mesh = jittered_rectangle_mesh((14, 10), domain=[(0.0, 2.0), (0.0, 1.0)])
    model = MeshNO(1, 1, latent_shape=(16, 12), hidden_channels=8, n_layers=2,
                   processor="lsm", processor_config={"heads": 4, "num_basis": 4})
    assert isinstance(model.processor, LSM)
    x = torch.randn(mesh.num_nodes, 1)
    out = model(mesh, x=x)
    out.square().mean().backward()
    assert out.shape == (140, 1)
    assert all(p.grad is not None for p in model.processor.parameters())
    assert get_model("mesh_no", **model.config).config == model.config


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_dim must be 2"):
        LSM(1, 1, n_dim=3)
    with pytest.raises(ValueError, match="multiple of heads"):
        LSM(1, 1, hidden_channels=20, heads=8)
    with pytest.raises(ValueError, match="norm"):
        LSM(1, 1, norm="layer")
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1, H, W\]"):
        LSM(1, 1)(torch.randn(1, 2, 16, 16))
    with pytest.raises(ValueError, match="patch_size"):
        NeuralSpectralBlock2d(8, patch_size=(2, 2, 2), heads=2)

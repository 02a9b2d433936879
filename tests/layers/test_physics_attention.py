"""PhysicsAttention: equals Transolver's reference dense formula with the same weights, batches of
different meshes equal separate runs, and quadrature-weighted slice tokens converge at second order
under refinement (plain averages converge to a mesh-dependent value on graded meshes)."""

import torch

from geo_neuralop.layers import PhysicsAttention
from tests.conftest import observed_order


def _reference(attn: PhysicsAttention, x: torch.Tensor) -> torch.Tensor:
    """Transolver's Physics_Attention_Irregular_Mesh.forward, dense [B, N, C] (dropout off)."""
    b, n, _ = x.shape
    h, d = attn.heads, attn.head_dim
    fx_mid = attn.in_project_fx(x).reshape(b, n, h, d).permute(0, 2, 1, 3)
    x_mid = attn.in_project_x(x).reshape(b, n, h, d).permute(0, 2, 1, 3)
    slice_weights = torch.softmax(attn.in_project_slice(x_mid)
                                  / attn.temperature.view(1, h, 1, 1), dim=-1)  # B H N G
    slice_norm = slice_weights.sum(2)
    slice_token = torch.einsum("bhnc,bhng->bhgc", fx_mid, slice_weights)
    slice_token = slice_token / (slice_norm + 1e-5)[:, :, :, None]
    q, k, v = attn.to_q(slice_token), attn.to_k(slice_token), attn.to_v(slice_token)
    dots = torch.matmul(q, k.transpose(-1, -2)) * d ** -0.5
    out_slice = torch.matmul(torch.softmax(dots, dim=-1), v)
    out_x = torch.einsum("bhgc,bhng->bhnc", out_slice, slice_weights)
    return attn.to_out(out_x.permute(0, 2, 1, 3).reshape(b, n, h * d))


def test_equals_the_reference_formula(float64):
    attn = PhysicsAttention(24, heads=3, slices=6, quadrature=False).double()
    x = torch.randn(2, 50, 24)
    expected = _reference(attn, x)
    batch = torch.arange(2).repeat_interleave(50)
    got = attn(x.reshape(100, 24), batch, 2)
    assert (got - expected.reshape(100, 24)).abs().max() < 1e-12
    # uniform quadrature weights: the same averages (the floor scales with the weights)
    weighted = PhysicsAttention(24, heads=3, slices=6, quadrature=True).double()
    weighted.load_state_dict(attn.state_dict())
    got_w = weighted(x.reshape(100, 24), batch, 2, weights=torch.full((100,), 0.37))
    assert (got_w - got).abs().max() < 1e-12


def test_batches_of_different_sizes_equal_separate_runs():
    attn = PhysicsAttention(16, heads=2, slices=4)
    sizes = [30, 7, 55]
    xs = [torch.randn(n, 16) for n in sizes]
    ws = [torch.rand(n) + 0.1 for n in sizes]
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    out = attn(torch.cat(xs), batch, 3, weights=torch.cat(ws))
    for part, x, w in zip(out.split(sizes), xs, ws, strict=True):
        assert (attn(x, weights=w) - part).abs().max() < 1e-5


def _tokens(attn, pos, weights):
    feats = torch.stack([torch.sin(3 * pos), torch.cos(2 * pos), pos ** 2, torch.ones_like(pos)],
                        1)  # smooth fields of x in [0, 1]
    x = feats @ torch.linspace(-1, 1, 4 * 8, dtype=torch.float64).reshape(4, 8)
    w = attn.slice_weights(x)
    return attn.tokens(x, w, [(0, len(pos))], weights)[0].detach()


def test_quadrature_tokens_converge_and_plain_ones_depend_on_the_mesh(float64):
    torch.manual_seed(0)
    weighted = PhysicsAttention(8, heads=2, slices=3, quadrature=True).double()
    plain = PhysicsAttention(8, heads=2, slices=3, quadrature=False).double()
    plain.load_state_dict(weighted.state_dict())

    def graded(n, power):  # nodes x = s^power on [0, 1], trapezoid weights
        s = torch.linspace(0, 1, n, dtype=torch.float64)
        pos = s ** power
        h = pos.diff()
        w = torch.zeros(n, dtype=torch.float64)
        w[:-1] += h / 2
        w[1:] += h / 2
        return pos, w

    ref = _tokens(weighted, *graded(4097, 1.0))
    sizes = [17, 33, 65, 129]
    errors = [float((_tokens(weighted, *graded(n, 2.0)) - ref).abs().max()) for n in sizes]
    assert observed_order([1 / n for n in sizes], errors) > 1.8, errors
    assert errors[-1] < 1e-3
    # plain averages weigh every node alike: on the graded mesh they converge elsewhere
    gap = float((_tokens(plain, *graded(4097, 2.0)) - _tokens(plain, *graded(4097, 1.0)))
                .abs().max())
    assert gap > 100 * errors[-1], gap

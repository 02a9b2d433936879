"""MultigridPatching2D: the same patches and stitching as neuraloperator's, an exact round trip,
coarse views that are subsampled copies of the field, and precise refusals."""

import warnings

import pytest
import torch

from geo_neuralop.layers import MultigridPatching2D


@pytest.mark.parametrize(("levels", "fraction", "shape"),
                         [(1, 0.0, (32, 32)), (1, 0.125, (32, 48)), (2, 0.1, (64, 64)),
                          (2, 0.25, (32, 64))])
def test_equals_neuraloperator_multigrid_patching(levels, fraction, shape, capsys):
    pytest.importorskip("neuralop", reason="neuraloperator is in the bench extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from neuralop.training.patching import MultigridPatching2D as Peer
    x = torch.randn(2, 3, *shape)
    peer = Peer(torch.nn.Identity(), levels=levels, padding_fraction=fraction)
    expected, _ = peer.patch(x, x)
    ours = MultigridPatching2D(levels, fraction)
    patches = ours.patch(x)
    assert patches.shape == expected.shape and torch.equal(patches, expected)
    y = torch.randn(patches.shape[0], 2, *patches.shape[2:])
    if peer.padding_height or peer.padding_width:
        stitched, _ = peer.unpatch(y, None)
    else:
        stitched = peer._stitch(y)
    assert torch.equal(ours.unpatch(y, shape), stitched)
    capsys.readouterr()  # neuraloperator prints its settings


def test_round_trip_and_context_views():
    mg = MultigridPatching2D(levels=2, padding_fraction=0.0625)
    x = torch.randn(2, 3, 64, 32)
    patches = mg.patch(x)
    assert patches.shape == (2 * 16, 9, 16 + 8, 8 + 4)
    assert torch.equal(mg.unpatch(patches[:, :3], (64, 32)), x)
    # the level-l view of patch (i, j) is the field subsampled by 2^l, periodic
    coarse = x[:, :, ::4, ::4]  # level 2: [2, 3, 16, 8]
    p1, p2 = mg.padding((64, 32))
    view = patches[0, 6:9]  # sample 0, patch (0, 0), level 2
    assert view.shape[1:] == (16 + 2 * p1, 8 + 2 * p2)
    rows, cols = torch.arange(view.shape[1]), torch.arange(view.shape[2])
    assert any(torch.equal(view, coarse[0][:, (rows + s) % 16][:, :, (cols + t) % 8])
               for s in range(16) for t in range(8))


def test_levels_zero_is_the_identity_and_bad_shapes_are_refused():
    x = torch.randn(1, 2, 10, 12)
    assert MultigridPatching2D(0).patch(x) is x
    with pytest.raises(ValueError, match="levels=2"):
        MultigridPatching2D(2).patch(torch.randn(1, 1, 24, 30))
    with pytest.raises(ValueError, match="levels"):
        MultigridPatching2D(-1)
    with pytest.raises(ValueError, match="padding_fraction"):
        MultigridPatching2D(1, 0.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        MultigridPatching2D(1).patch(torch.randn(2, 16, 16))

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actinr_codec.model.tiling import Tiling, pixel_centres


def _weights(tiling: Tiling, height: int, width: int) -> torch.Tensor:
    yc, xc = pixel_centres(height), pixel_centres(width)
    out = []
    for r in range(tiling.rows.count):
        for c in range(tiling.cols.count):
            out.append(tiling.rows.weight(yc, r)[:, None] * tiling.cols.weight(xc, c)[None, :])
    return torch.stack(out)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.integers(4, 40),
       overlap=st.integers(0, 5), scale=st.sampled_from([0.5, 1, 2, 3, 4]))
def test_blend_weights_are_a_partition_of_unity(h, w, tile, overlap, scale):
    if 2 * overlap >= tile:
        overlap = 0
    tiling = Tiling.for_frame(h, w, tile, overlap)
    oh, ow = max(1, round(h * scale)), max(1, round(w * scale))
    total = _weights(tiling, oh, ow).sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.integers(4, 40), overlap=st.integers(0, 5))
def test_pixel_boxes_are_tight_around_the_pixels_with_weight(h, w, tile, overlap):
    if 2 * overlap >= tile:
        overlap = 0
    tiling = Tiling.for_frame(h, w, tile, overlap)
    weights = _weights(tiling, h, w)
    for k, (y0, y1, x0, x1) in enumerate(tiling.pixel_boxes(h, w).tolist()):
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert not (weights[k][~inside] > 0).any()
        assert y1 > y0 and x1 > x0  # every tile owns at least one source pixel
        box = weights[k][y0:y1, x0:x1] > 0
        # Tight: the box's outer rows and columns hold weighted pixels.
        assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()


def test_local_coordinates_span_the_tile():
    tiling = Tiling.for_frame(64, 64, 16, 2)
    lo, hi = tiling.cols.bounds(1)
    local = tiling.cols.to_local(torch.tensor([lo, (lo + hi) / 2, hi]), torch.tensor(1))
    assert torch.allclose(local, torch.tensor([-1.0, 0.0, 1.0]))

import pytest
import torch

from imagedynamics.ops.brush import rasterize_strokes


def test_stroke_covers_its_segment_and_nothing_far_away():
    mask = rasterize_strokes([{"points": [[10, 20], [50, 20]], "radius": 3}], 40, 64)
    assert mask[20, 10:51].min() == 1.0
    assert mask[20 + 5, :].max() == 0.0
    assert mask[:, 56:].max() == 0.0


def test_erase_removes_what_it_covers_and_order_matters():
    paint = {"points": [[10, 10], [30, 10]], "radius": 4}
    erase = {"points": [[20, 10]], "radius": 3, "erase": True}
    mask = rasterize_strokes([paint, erase], 20, 40)
    assert mask[10, 20] == 0.0 and mask[10, 12] == 1.0
    assert rasterize_strokes([erase, paint], 20, 40)[10, 20] == 1.0


def test_paints_onto_a_base_mask():
    base = torch.zeros(10, 10)
    base[0, 0] = 1.0
    mask = rasterize_strokes([{"points": [[8, 8]], "radius": 1}], 10, 10, base=base)
    assert mask[0, 0] == 1.0 and mask[8, 8] == 1.0 and base[8, 8] == 0.0


@pytest.mark.parametrize("stroke", [{"points": []}, {"points": [[1, float("nan")]]}, {"points": [[1, 2]], "radius": 0},
                                    {"points": [[1, 2, 3]]}])
def test_malformed_strokes_are_rejected(stroke):
    with pytest.raises(ValueError, match="brush stroke 0"):
        rasterize_strokes([stroke], 10, 10)

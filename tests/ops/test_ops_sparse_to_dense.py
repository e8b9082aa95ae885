"""Sparse-to-dense motion: Eqs. 5-7 on a hand-computed case, edge awareness, brush exactness, drag-a-region."""
from __future__ import annotations

import heapq
import math

import pytest
import torch
from media import picture

from imagedynamics.ops.sparse_to_dense import (
    apply_brush,
    default_sigma,
    edge_aware_arrow_field,
    edge_aware_refine,
    gaussian_arrow_field,
    geodesic_affinity,
    tracks_to_dense_motion,
    tracks_to_sparse_flow,
)
from imagedynamics.ops.trajectories import Arrows, Tracks, TrajectoryFormatError


def test_gaussian_field_matches_eqs_5_to_7_by_hand():
    H, W, sigma, R = 7, 11, 2.0, 0.5
    starts = [(2.0, 3.0), (8.0, 2.0)]
    ends = [(5.0, 3.0), (8.0, 0.0)]
    speeds = [0.5, 1.5]
    strength = 2.0
    arrows = Arrows(torch.tensor(starts), torch.tensor(ends), torch.tensor(speeds))
    got = gaussian_arrow_field(arrows, H, W, sigma=sigma, threshold=R, strength=strength)
    assert got.shape == (2, H, W) and got.dtype == torch.float32
    zeros = 0
    for y in range(H):
        for x in range(W):
            fx = fy = 0.0
            for (sx, sy), (ex, ey), s in zip(starts, ends, speeds):
                w = math.exp(-(((x - sx) ** 2 + (y - sy) ** 2) ** 0.5 / sigma) ** 2)  # Eq. 6
                fx += w * (ex - sx) * s * strength  # Eq. 5: f_s = (end - start) * speed at the start
                fy += w * (ey - sy) * s * strength
            if math.hypot(fx, fy) <= R:  # Eq. 7
                fx = fy = 0.0
                zeros += 1
                assert got[0, y, x] == 0.0 and got[1, y, x] == 0.0
            assert abs(got[0, y, x].item() - fx) < 1e-5 and abs(got[1, y, x].item() - fy) < 1e-5, (x, y)
    assert 0 < zeros < H * W  # the threshold actually cut something
    # at arrow 0's start: its own vector 3 * 0.5 * 2 = 3 px/frame plus arrow 1's tail exp(-(37 / 4))
    assert abs(got[0, 3, 2].item() - 3.0) < 1e-5


def test_default_sigma_is_170_at_512():
    assert default_sigma(512, 512) == 170.0 and default_sigma(300, 1024) == 340.0
    arrows = Arrows(torch.tensor([[100.0, 0.0]]), torch.tensor([[101.0, 0.0]]))
    field = gaussian_arrow_field(arrows, 1, 512, threshold=0.0)
    assert abs(field[0, 0, 270].item() - math.exp(-1.0)) < 1e-5  # 170 px away: exp(-(170/170)^2)


def test_gaussian_field_without_arrows_is_zero():
    empty = Arrows(torch.zeros(0, 2), torch.zeros(0, 2))
    assert torch.equal(gaussian_arrow_field(empty, 8, 9), torch.zeros(2, 8, 9))


def two_region_picture(H: int, W: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(3, H, W)
    img[1, :, : W // 2] = 0.6  # green left, textured
    img[2, :, W // 2:] = 0.8  # blue right, textured
    return (img + 0.03 * torch.randn(3, H, W, generator=g)).clamp(0, 1)


def test_edge_aware_refine_stops_motion_at_a_strong_edge():
    H, W = 192, 256  # larger than the working resolution: exercises the upsampling path too
    guide = two_region_picture(H, W)
    arrows = Arrows(torch.tensor([[112.0, 96.0]]), torch.tensor([[112.0, 86.0]]))  # 16 px left of the edge
    field = gaussian_arrow_field(arrows, H, W)
    refined = edge_aware_refine(field, guide)
    before, after = field.norm(dim=0), refined.norm(dim=0)
    far_side = (slice(None), slice(W // 2 + 4, None))
    near_side = (slice(None), slice(0, W // 2 - 4))
    assert before[far_side].mean() > 2.0  # the plain Gaussian field bleeds across the edge
    assert after[far_side].mean() < 0.05 * before[far_side].mean()
    assert after[near_side].mean() > 0.97 * before[near_side].mean()
    assert torch.equal(refined[:, field.norm(dim=0) == 0], torch.zeros_like(refined[:, field.norm(dim=0) == 0]))
    # seeds given explicitly give the same gate as the automatic peaks here
    explicit = edge_aware_refine(field, guide, seeds=arrows)
    assert torch.allclose(explicit, refined, atol=1e-4)


def test_edge_aware_arrow_field_keeps_each_arrow_on_its_side():
    H, W = 96, 128
    guide = two_region_picture(H, W, seed=1)
    arrows = Arrows(torch.tensor([[50.0, 48.0], [78.0, 48.0]]), torch.tensor([[50.0, 40.0], [86.0, 48.0]]))
    plain = gaussian_arrow_field(arrows, H, W)
    aware = edge_aware_arrow_field(arrows, guide)
    left, right = (slice(None), slice(0, 60)), (slice(None), slice(68, None))
    # the right arrow pushes +x, the left arrow pushes -y (up)
    assert plain[0][left].abs().mean() > 1.0 and plain[1][right].abs().mean() > 1.0
    assert aware[0][left].abs().mean() < 0.02 * plain[0][left].abs().mean()
    assert aware[1][right].abs().mean() < 0.02 * plain[1][right].abs().mean()
    assert aware[1][left].abs().mean() > 0.95 * plain[1][left].abs().mean()


def dijkstra_costs(img: torch.Tensor, seed: tuple[int, int], sigma_color: float, tolerance: float) -> torch.Tensor:
    """Independent reference: 4-connected cheapest paths with heapq."""
    _, h, w = img.shape
    best = [[math.inf] * w for _ in range(h)]
    sx, sy = seed
    best[sy][sx] = 0.0
    heap = [(0.0, sx, sy)]
    while heap:
        c, x, y = heapq.heappop(heap)
        if c > best[y][x]:
            continue
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nx, ny = x + dx, y + dy
            if 0 <= nx < w and 0 <= ny < h:
                diff = math.sqrt(sum((img[k, y, x].item() - img[k, ny, nx].item()) ** 2 for k in range(3)))
                step = min((max(diff - tolerance, 0.0) / sigma_color) ** 2, 30.0)  # a step at the cap is a wall
                if c + step < best[ny][nx]:
                    best[ny][nx] = c + step
                    heapq.heappush(heap, (c + step, nx, ny))
    return torch.tensor(best)


def test_geodesic_affinity_matches_dijkstra():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(3, 14, 17, generator=g)
    img[:, :, 8] = 1.0  # a wall with a gap
    img[:, 10:, 8] = img[:, 10:, 7]
    seeds = torch.tensor([[2.0, 3.0], [15.0, 12.0]])
    got = geodesic_affinity(img, seeds, sigma_color=0.3, tolerance=0.05, work_size=64, smooth=False)
    for i, (x, y) in enumerate(seeds.long().tolist()):
        expected = torch.exp(-dijkstra_costs(img, (x, y), 0.3, 0.05).clamp(max=30.0))  # costs capped at 30
        assert torch.allclose(got[i], expected, atol=1e-5), (got[i] - expected).abs().max()


def test_apply_brush_is_exact():
    g = torch.Generator().manual_seed(4)
    field = torch.randn(2, 20, 30, generator=g) * 5 + 1
    mask = torch.zeros(20, 30)
    mask[5:12, 8:20] = 1.0
    mask[5:12, 20:22] = 0.5  # soft edge
    out = apply_brush(field, mask)
    assert torch.equal(out[:, mask == 0], torch.zeros(2, int((mask == 0).sum())))
    assert torch.equal(out[:, 5:12, 8:20], field[:, 5:12, 8:20])
    assert torch.allclose(out[:, 5:12, 20:22], 0.5 * field[:, 5:12, 20:22])
    inverted = apply_brush(field, mask, invert=True)
    assert torch.equal(inverted[:, 5:12, 8:20], torch.zeros(2, 7, 12))
    assert torch.equal(inverted[:, 0], field[:, 0])
    # a ComfyUI MASK [1, H, W] and a motion [T, 2, H, W]
    motion = torch.randn(4, 2, 20, 30, generator=g)
    out_t = apply_brush(motion, mask[None])
    assert out_t.abs()[:, :, mask == 0].max() == 0.0


def test_apply_brush_rejects_a_mask_of_another_size():
    with pytest.raises(TrajectoryFormatError, match=r"^motion_mask: the mask is 10x10 \(H x W\) but the motion is "
                                                    r"20x30"):
        apply_brush(torch.zeros(2, 20, 30), torch.ones(10, 10), input_name="motion_mask")
    with pytest.raises(TrajectoryFormatError, match="^brush: the mask contains NaN"):
        apply_brush(torch.zeros(2, 4, 4), torch.full((4, 4), float("nan")))


def test_sparse_flow_patches():
    pts = torch.tensor([[[10.0, 8.0], [30.0, 20.0]],
                        [[12.5, 9.0], [30.0, 21.0]],
                        [[15.0, 11.0], [28.0, 25.0]]])  # [T=3, N=2, 2]
    vis = torch.ones(3, 2, dtype=torch.bool)
    vis[1, 1] = False
    flows, mask = tracks_to_sparse_flow(Tracks(pts, vis), 32, 40, num_frames=3, radius=2)
    assert flows.shape == (3, 2, 32, 40) and mask.shape == (3, 1, 32, 40)
    assert torch.equal(flows[0], torch.zeros(2, 32, 40))
    assert mask[0, 0, 6:11, 8:13].eq(1).all() and mask[0].sum() == 50  # two 5x5 patches
    assert torch.equal(flows[2, :, 6:11, 8:13], torch.tensor([5.0, 3.0])[:, None, None].expand(2, 5, 5))
    assert torch.equal(flows[2, :, 18:23, 28:33], torch.tensor([-2.0, 5.0])[:, None, None].expand(2, 5, 5))
    assert mask[1, 0, 18:23, 28:33].eq(0).all() and flows[1, :, 18:23, 28:33].eq(0).all()  # hidden point
    assert flows[:, :, mask[0, 0] == 0].abs().max() == 0  # nothing outside the patches
    # resampling to more frames with PCHIP keeps the end points
    more, _ = tracks_to_sparse_flow(Tracks(pts), 32, 40, num_frames=9, radius=1)
    assert torch.equal(more[-1, :, 8, 10], torch.tensor([5.0, 3.0]))


def test_dense_motion_interpolates_tracks_exactly():
    pts = torch.tensor([[[10.0, 10.0], [40.0, 30.0], [50.0, 5.0]],
                        [[14.0, 11.0], [38.0, 33.0], [50.0, 5.0]],
                        [[20.0, 12.0], [35.0, 36.0], [50.0, 5.0]]])  # the third track is an anchor that stays
    motion = tracks_to_dense_motion(Tracks(pts), 48, 64, num_frames=3)
    assert motion.shape == (3, 2, 48, 64)
    assert torch.equal(motion[0], torch.zeros(2, 48, 64))
    for t in range(3):
        for n in range(3):
            x, y = pts[0, n].long().tolist()
            assert torch.equal(motion[t, :, y, x], pts[t, n] - pts[0, n]), (t, n)
    # fall-off: far from every track nothing moves
    far = tracks_to_dense_motion(Tracks(pts[:, :1]), 48, 200, num_frames=3, sigma=8.0)
    assert far[-1, :, 10, 10 + 3 * 8].abs().max() < 1e-3 * 10  # 3 sigma: exp(-9) of the 10 px displacement
    assert far[-1, 0, 10, 10 + 8].item() == pytest.approx(10 * math.exp(-1), rel=1e-4)  # 1 sigma, one track


def test_dense_motion_drags_a_region_of_a_real_picture_along_the_path():
    image = picture("astronaut", long_side=128)[0]  # [3, 128, 128]
    _, H, W = image.shape
    # a curved drawn path of 9 clicks, resampled to 16 frames with PCHIP
    path = torch.tensor([[40.0, 70.0], [44, 66], [49, 63], [55, 61], [61, 60], [67, 60], [72, 62], [76, 65],
                         [79, 69]])
    tracks = Tracks(path[:, None])
    brush = torch.zeros(H, W)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    brush[((xx - 40) ** 2 + (yy - 70) ** 2) <= 18 ** 2] = 1.0
    motion = tracks_to_dense_motion(tracks, H, W, num_frames=16, brush=brush)
    last = motion[-1]
    # render the last frame by forward splatting to the nearest pixel, with a marker under the path's start
    marker = torch.zeros(H, W)
    marker[70, 40] = 1.0
    tx = (xx + last[0]).round().long().clamp(0, W - 1)
    ty = (yy + last[1]).round().long().clamp(0, H - 1)
    splat = torch.zeros(H * W).scatter_reduce(0, (ty * W + tx).flatten(), marker.flatten(), reduce="amax")
    landed = splat.view(H, W).nonzero()[0].flip(0).float()  # (x, y)
    assert torch.linalg.norm(landed - path[-1]) <= 1.5
    assert torch.allclose(last[:, 70, 40], path[-1] - path[0], atol=1e-4)
    # outside the brush nothing moves, in every frame
    assert motion[:, :, brush == 0].abs().max().item() == 0.0
    assert motion[:, :, brush == 1].abs().max().item() > 30.0


def test_dense_motion_hidden_points_hold_and_brush_invert():
    pts = torch.tensor([[[10.0, 10.0]], [[20.0, 10.0]], [[30.0, 10.0]]])
    vis = torch.tensor([[True], [True], [False]])
    motion = tracks_to_dense_motion(Tracks(pts, vis), 24, 48, num_frames=3)
    assert motion[2, :, 10, 10].tolist() == [10.0, 0.0]  # the hidden last point holds the previous position
    still = torch.zeros(24, 48)
    still[:, 24:] = 1.0
    m = tracks_to_dense_motion(Tracks(pts), 24, 48, num_frames=3, brush=still, invert_brush=True)
    assert m[:, :, :, 24:].abs().max() == 0 and m[2, 0, 10, 10] == 20.0

import pytest
import torch

from imagedynamics.ops.render import motion_magnitude_metric, render_frames


def test_zero_motion_reproduces_the_picture_exactly():
    image = torch.rand(1, 3, 20, 24)
    frames, holes = render_frames(image, torch.zeros(5, 2, 20, 24), motion_magnitude_metric(torch.zeros(5, 2, 20, 24)))
    assert torch.equal(frames, image.expand(5, -1, -1, -1))
    assert holes.max() == 0


def test_still_pixels_are_bit_exact_next_to_moving_ones():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 32, 32)).float() / 255.0
    displacement = torch.zeros(6, 2, 32, 32)
    displacement[:, 0, 8:16, 8:16] = torch.linspace(0, 3.3, 6).view(6, 1, 1)
    metric = motion_magnitude_metric(displacement)
    frames, _ = render_frames(image, displacement, metric)
    reached = torch.zeros(32, 32, dtype=torch.bool)
    reached[8:16, 8:21] = True  # where the moving block can land (up to 3.3 px right, bilinear)
    still = ~reached
    assert torch.equal(frames[:, :, still], image[0, :, still].expand(6, -1, -1))
    assert not torch.equal(frames[-1, :, 8:16, 8:20], image[0, :, 8:16, 8:20])


def test_an_integer_shift_moves_the_content_and_fills_the_vacated_strip():
    image = torch.rand(1, 3, 16, 16)
    displacement = torch.zeros(2, 2, 16, 16)
    displacement[1, 0] = 2.0
    frames, holes = render_frames(image, displacement, None)
    assert torch.allclose(frames[1, :, :, 2:], image[0, :, :, :-2], atol=1e-6)
    assert holes[1] == pytest.approx(2 / 16)
    assert torch.isfinite(frames).all() and frames[1, :, :, :2].abs().sum() > 0  # filled, not black


def test_chunking_does_not_change_the_result():
    torch.manual_seed(1)
    image = torch.rand(1, 3, 16, 16)
    displacement = torch.randn(7, 2, 16, 16) * 2
    metric = motion_magnitude_metric(displacement)
    a, _ = render_frames(image, displacement, metric, chunk_size=1)
    b, _ = render_frames(image, displacement, metric, chunk_size=7)
    assert torch.allclose(a, b, atol=1e-6)


def test_blend_mixes_two_renders_by_alpha():
    image = torch.rand(1, 3, 8, 8)
    forward = torch.zeros(3, 2, 8, 8)
    backward = torch.zeros(3, 2, 8, 8)
    backward[:, 0] = 1.0
    alpha = torch.tensor([0.0, 0.5, 1.0])
    frames, _ = render_frames(image, forward, None, blend=(backward, alpha), blend_coverage=False)
    only_back, _ = render_frames(image, backward, None)
    assert torch.allclose(frames[0], image[0])
    assert torch.allclose(frames[2], only_back[2], atol=1e-6)
    assert torch.allclose(frames[1], 0.5 * image[0] + 0.5 * only_back[1], atol=1e-6)


def test_blending_keeps_still_pixels_bit_exact():
    torch.manual_seed(2)
    image = torch.randint(0, 256, (1, 3, 16, 16)).float() / 255.0
    forward = torch.zeros(5, 2, 16, 16)
    forward[:, 0, :4, :4] = 1.0
    backward = -forward
    alpha = torch.linspace(0, 1, 5).pow(0.7)
    frames, _ = render_frames(image, forward, None, blend=(backward, alpha))
    assert torch.equal(frames[:, :, 8:, 8:], image[0, :, 8:, 8:].expand(5, -1, -1, -1))


def test_a_metric_per_frame_is_used_frame_by_frame():
    image = torch.rand(1, 3, 8, 8)
    displacement = torch.zeros(2, 2, 8, 8)
    displacement[:, 0, :, 2] = 1.0  # column 2 lands on column 3 in both frames
    front = torch.zeros(2, 1, 8, 8)
    front[0, 0, :, 2] = 50.0   # frame 0: the mover is in front
    front[1, 0, :, 3] = 50.0   # frame 1: the still pixel is in front
    frames, _ = render_frames(image, displacement, front)
    assert torch.allclose(frames[0, :, :, 3], image[0, :, :, 2], atol=1e-5)
    assert torch.allclose(frames[1, :, :, 3], image[0, :, :, 3], atol=1e-5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="displacement"):
        render_frames(torch.rand(1, 3, 8, 8), torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="image"):
        render_frames(torch.rand(2, 3, 8, 8), torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="metric"):
        render_frames(torch.rand(1, 3, 8, 8), torch.zeros(3, 2, 8, 8), torch.zeros(2, 1, 8, 8))


def test_motion_magnitude_metric_is_the_mean_norm_over_any_number_of_frames():
    displacement = torch.randn(37, 2, 6, 7)  # more frames than one reduction chunk, and not a multiple of it
    expected = displacement.norm(dim=1, keepdim=True).mean(dim=0, keepdim=True) * 2.5
    assert torch.allclose(motion_magnitude_metric(displacement, temperature=2.5), expected, atol=1e-5)


def test_pixels_moving_only_by_negative_offsets_are_not_taken_for_still_ones():
    image = torch.rand(1, 3, 12, 12)
    displacement = torch.zeros(3, 2, 12, 12)
    displacement[:, 0, 4:8, 4:8] = -2.0  # moves left only: its max is 0, its min is not
    frames, _ = render_frames(image, displacement, motion_magnitude_metric(displacement, temperature=50.0))
    assert torch.allclose(frames[:, :, 4:8, 2:6], image[:, :, 4:8, 4:8].expand(3, -1, -1, -1), atol=1e-6)


def test_content_entering_through_the_border_continues_the_border_along_the_motion():
    image = torch.rand(1, 3, 10, 12)
    displacement = torch.zeros(1, 2, 10, 12)
    displacement[:, 0] = 3.0  # a pan: everything moves 3 px right, columns 0-2 enter from the left
    frames, holes = render_frames(image, displacement)
    assert float(holes[0]) == pytest.approx(3 / 12)
    # the entering strip repeats the border column the motion brings in (what was left of I0 is unknown)
    assert torch.allclose(frames[0, :, :, :3], image[0, :, :, :1].expand(-1, -1, 3), atol=1e-5)
    assert torch.allclose(frames[0, :, :, 3:], image[0, :, :, :9], atol=1e-5)
    # push-pull alone fills the strip with blurred averages instead
    plain, _ = render_frames(image, displacement, border=False)
    assert not torch.allclose(plain[0, :, :, :3], image[0, :, :, :1].expand(-1, -1, 3), atol=1e-2)


def test_disocclusions_inside_the_picture_are_left_to_push_pull():
    torch.manual_seed(1)
    image = torch.rand(1, 3, 24, 24)
    displacement = torch.zeros(3, 2, 24, 24)
    displacement[:, 0, 8:16, 8:16] = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)  # a block slides right inside
    metric = motion_magnitude_metric(displacement, temperature=50.0)
    frames, holes = render_frames(image, displacement, metric)
    plain, _ = render_frames(image, displacement, metric, border=False)
    assert float(holes.max()) > 0
    assert torch.equal(frames, plain)


def test_border_extension_is_closer_to_the_real_next_frames_of_a_tilting_shot():
    from media import clip

    from imagedynamics.models.renderer import brightness_constancy_metric
    from imagedynamics.ops.optical_flow import dis_flow

    frames = clip("bikes", 6, 256)  # the camera tilts: new content enters at the top
    f0, f5 = frames[:1], frames[5:6]
    flow = dis_flow(frames[0], frames[5], preset="medium")[None]
    metric = brightness_constancy_metric(f0, f5, flow)

    def psnr(x):
        return -10 * torch.log10(((x.clamp(0, 1) - f5) ** 2).mean())

    extended, holes = render_frames(f0, flow, metric)
    plain, _ = render_frames(f0, flow, metric, border=False)
    assert float(holes[0]) > 0.05
    assert psnr(extended) > psnr(plain) + 2.0, (float(psnr(extended)), float(psnr(plain)))


def test_pixels_only_untrusted_sources_reach_are_filled_like_holes():
    image = torch.full((1, 3, 16, 16), 0.25)
    image[..., 6:10, 6:10] = 1.0  # a bright block whose motion we do not trust
    displacement = torch.zeros(1, 2, 16, 16)
    displacement[:, 0] = 2.0
    confidence = torch.ones(1, 1, 16, 16)
    confidence[..., 6:10, 6:10] = 0.01
    trusted, _ = render_frames(image, displacement, confidence=torch.ones_like(confidence))
    filled, holes = render_frames(image, displacement, confidence=confidence)
    assert torch.allclose(trusted[..., 6:10, 8:12], torch.ones(1, 3, 4, 4), atol=1e-5)
    assert torch.allclose(filled[..., 6:10, 8:12], torch.full((1, 3, 4, 4), 0.25), atol=1e-5)  # from around
    assert torch.equal(filled[..., :5, :], trusted[..., :5, :])
    assert float(holes[0]) == pytest.approx(2 / 16)  # hole fractions still count coverage only
    with pytest.raises(ValueError, match="confidence"):
        render_frames(image, displacement, confidence=torch.ones(1, 1, 8, 8))


def test_the_metric_pass_reports_progress_and_the_memory_estimate_fits_a_measured_render():
    from imagedynamics.ops.progress import Interrupted
    from imagedynamics.ops.render import largest_chunk, render_memory

    disp = torch.randn(40, 2, 8, 8)
    seen = []
    metric = motion_magnitude_metric(disp, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(16, 40), (32, 40), (40, 40)] and torch.allclose(metric, motion_magnitude_metric(disp))

    def stop(done, total):
        raise Interrupted("stopped")

    with pytest.raises(Interrupted):
        motion_magnitude_metric(disp, progress=stop)
    # measured at 512 x 512 (RSS growth, bench/bench_render_memory.py): 63-80 MiB splatting 1 frame at a time,
    # 291-366 MiB for 8; the estimate is above every measurement, and not far
    assert 80 * 2**20 < render_memory(512, 512, 1) < 1.8 * 63 * 2**20
    assert 366 * 2**20 < render_memory(512, 512, 8) < 1.8 * 291 * 2**20
    assert largest_chunk(512, 512, render_memory(512, 512, 3), 8) == 3


def test_coverage_weighted_blend_takes_the_render_that_covers_a_pixel():
    """Where one direction left a hole (filled by push-pull: made up) or smeared, the other direction's real
    pixels win; where both cover a pixel fully, the weights are the cross-fade's."""
    torch.manual_seed(3)
    image = torch.rand(1, 3, 16, 16)
    forward = torch.zeros(3, 2, 16, 16)
    backward = torch.zeros(3, 2, 16, 16)
    backward[:, 0] = 2.0  # columns 0-1 of the backward render are holes
    alpha = torch.tensor([0.0, 0.5, 1.0])
    weighted, _ = render_frames(image, forward, None, blend=(backward, alpha))
    plain, _ = render_frames(image, forward, None, blend=(backward, alpha), blend_coverage=False)
    only_back, _ = render_frames(image, backward, None)
    # frame 1, the holes: the forward render's true pixels (the plain blend mixes in half of a made-up fill)
    assert torch.allclose(weighted[1, :, :, :2], image[0, :, :, :2], atol=0.05 / 1.05 + 1e-6)
    assert (plain[1, :, :, :2] - image[0, :, :, :2]).abs().mean() > 4 * (weighted[1, :, :, :2]
                                                                       - image[0, :, :, :2]).abs().mean()
    # both cover fully: the plain cross-fade
    assert torch.allclose(weighted[1, :, :, 3:], plain[1, :, :, 3:], atol=1e-6)
    # alpha 0 and 1 give either render exactly
    assert torch.equal(weighted[0], image[0]) and torch.equal(weighted[2], only_back[2])


def test_a_phase_map_cross_fades_each_pixel_at_its_own_time():
    from imagedynamics.ops.containers import LoopBlend

    image = torch.rand(1, 3, 8, 8)
    forward = torch.zeros(5, 2, 8, 8)
    backward = torch.zeros(5, 2, 8, 8)
    backward[:, 1] = 1.0  # moves down 1 px (row 0 is a hole)
    phase = torch.full((1, 1, 8, 8), 0.25)
    phase[..., 4:] = 0.75  # the right half cross-fades later
    blend = LoopBlend(backward, torch.arange(5) / 5, phase, window=0.5)
    assert torch.allclose(blend.alpha(0, 5)[:, 0, 5, 0], torch.tensor([0.0, 0.4, 0.8, 1.0, 1.0]))
    assert torch.allclose(blend.alpha(0, 5)[:, 0, 5, 6], torch.tensor([0.0, 0.0, 0.0, 0.2, 0.6]))
    frames, _ = render_frames(image, forward, None, blend=blend)
    only_back, _ = render_frames(image, backward, None)
    assert torch.equal(frames[3, :, 1:, :4], only_back[3, :, 1:, :4])  # left half done
    assert torch.equal(frames[2, :, :, 4:], image[0, :, :, 4:])  # right half not started
    with pytest.raises(ValueError, match="phase must lie"):
        LoopBlend(backward, torch.arange(5) / 5, torch.full((1, 1, 8, 8), 0.1), window=0.5)
    with pytest.raises(ValueError, match="window"):
        LoopBlend(backward, torch.arange(5) / 5, phase, window=0.0)

"""train/long_animation_data.py on real clips: clips within one shot, DIS flow per frame pair, M_s (Eq. 8), and T's
pairs whose target is the DIS flow and whose input is the Gaussian field (Eqs. 5-7) of arrows sampled from it."""
from __future__ import annotations

import pytest
import torch
from media import clip_path, write_translation_video

from imagedynamics.ops.motion_strength import motion_strength
from imagedynamics.ops.optical_flow import dis_flow
from imagedynamics.ops.sparse_to_dense import default_sigma, gaussian_arrow_field
from imagedynamics.train.long_animation_data import (
    ClipSettings,
    RefinerPairs,
    VideoClips,
    clip_starts,
    prepare_video,
    prepare_videos,
    sample_arrows,
)
from imagedynamics.train.video_io import read_video_cropped

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = ClipSettings(width=64, height=48, num_frames=5, clip_every=5, max_frames=10)


@pytest.fixture(scope="module")
def carphone(tmp_path_factory):
    cache = tmp_path_factory.mktemp("la-data")
    return prepare_video(clip_path("carphone_pristine"), cache, SETTINGS), cache


def test_clip_starts():
    assert clip_starts(60, 25, 25) == [0, 25]
    assert clip_starts(50, 25, 25) == [0, 25] and clip_starts(49, 25, 25) == [0]
    assert clip_starts(60, 25, 10, cuts=[30]) == [0, 30]  # 10 and 20 would span the cut at 30
    assert clip_starts(60, 25, 5, limit=2) == [0, 5]
    assert clip_starts(24, 25, 25) == []
    # bikes cuts to another shot at frame 30 (tests/train/test_train_renderer.py): no clip spans it
    assert all(not s < 30 <= s + 24 for s in clip_starts(34, 25, 1, cuts=[30]))


def test_clips_flows_and_strength_match_dis(carphone):
    cache_file, cache = carphone
    assert prepare_video(clip_path("carphone_pristine"), cache, SETTINGS) == cache_file  # reused
    frames, _ = read_video_cropped(clip_path("carphone_pristine"), 64, 48, max_frames=10)
    clips = VideoClips([cache_file])
    assert len(clips) == 2 and clips.num_frames == 5
    for c, start in enumerate((0, 5)):
        item = clips[c]
        assert item["frames"].shape == (5, 3, 48, 64) and item["flows"].shape == (4, 2, 48, 64)
        assert torch.allclose(item["frames"], frames[start:start + 5], atol=0.5 / 255)
        real = torch.stack([dis_flow(frames[start + k], frames[start + k + 1]) for k in range(4)])
        assert torch.allclose(item["flows"], real, atol=2e-2, rtol=1e-3)  # stored as float16
        assert float(item["strength"]) == pytest.approx(float(motion_strength(real)), rel=1e-5)
        assert float(item["strength"]) > 0.05  # the clip moves


def test_clip_flips_keep_the_strength(carphone):
    plain, flipping = VideoClips([carphone[0]]), VideoClips([carphone[0]], flip=True)
    reference = plain[0]
    for seed in range(20):
        torch.manual_seed(seed)
        item = flipping[0]
        if not torch.equal(item["frames"], reference["frames"]):
            break
    assert torch.equal(item["frames"], reference["frames"].flip(-1))
    assert torch.equal(item["flows"][:, 0], -reference["flows"][:, 0].flip(-1))
    assert torch.equal(item["flows"][:, 1], reference["flows"][:, 1].flip(-1))
    assert float(motion_strength(item["flows"])) == pytest.approx(float(reference["strength"]), rel=1e-3)


def test_refiner_pairs_target_is_dis_and_input_is_the_gaussian_field(carphone):
    frames, _ = read_video_cropped(clip_path("carphone_pristine"), 64, 48, max_frames=10)
    pairs = RefinerPairs([carphone[0]], max_arrows=4)
    assert len(pairs) == 8  # 4 frame pairs in each of the 2 clips
    generator = torch.Generator().manual_seed(3)
    counts = set()
    for i, t in enumerate([0, 1, 2, 3, 5, 6, 7, 8]):
        s = pairs.sample(i, generator)
        assert torch.allclose(s.image, frames[t], atol=0.5 / 255)
        assert torch.allclose(s.target, dis_flow(frames[t], frames[t + 1]), atol=2e-2, rtol=1e-3)
        assert 1 <= s.arrows.num_arrows <= 4
        counts.add(s.arrows.num_arrows)
        # each arrow starts on a moving pixel and carries the real flow there
        x, y = s.arrows.start[:, 0].long(), s.arrows.start[:, 1].long()
        assert torch.allclose(s.arrows.vectors(), s.target[:, y, x].t(), atol=1e-5)
        assert bool((s.target[:, y, x].norm(dim=0) > 0.05).all())
        expected = gaussian_arrow_field(s.arrows, 48, 64, sigma=default_sigma(48, 64), threshold=0.05)
        assert torch.equal(s.rough, expected)
    assert len(counts) > 1  # the number of arrows varies
    rough, image, target = pairs[0]
    assert rough.shape == target.shape == (2, 48, 64) and image.shape == (3, 48, 64)


def test_sample_arrows_exact_cases():
    still = torch.zeros(2, 8, 8)
    assert sample_arrows(still, 5).num_arrows == 0
    one = still.clone()
    one[:, 3, 6] = torch.tensor([2.0, -1.0])  # one moving pixel: every draw is that pixel
    arrows = sample_arrows(one, 5, generator=torch.Generator().manual_seed(0))
    assert arrows.num_arrows == 1 and arrows.start.tolist() == [[6.0, 3.0]] and arrows.end.tolist() == [[8.0, 2.0]]
    below = still.clone()
    below[0] = 0.04  # under R = 0.05 px/frame: nothing moves
    assert sample_arrows(below, 3).num_arrows == 0
    # drawn by how far pixels move: a pixel moving 100x more is picked first almost always
    two = still.clone()
    two[0, 0, 0], two[0, 7, 7] = 0.1, 10.0
    firsts = [sample_arrows(two, 1, generator=torch.Generator().manual_seed(s)).start[0].tolist() for s in range(50)]
    assert firsts.count([7.0, 7.0]) >= 45


def test_translation_video_pairs(tmp_path):
    # a whole-frame pan of 1.5 px/frame: DIS finds it, M_s is its speed
    video = write_translation_video(tmp_path / "pan.avi", (1.2, -0.9), size=48, frames=6)
    settings = ClipSettings(width=48, height=48, num_frames=6, max_frames=6)
    item = VideoClips([prepare_video(video, tmp_path, settings)])[0]
    inner = item["flows"][:, :, 8:-8, 8:-8]
    assert inner[:, 0].median() == pytest.approx(1.2, abs=0.15) and inner[:, 1].median() == pytest.approx(-0.9,
                                                                                                         abs=0.15)
    assert float(item["strength"]) == pytest.approx(1.5, abs=0.25)


def test_short_and_bad_videos(tmp_path):
    short = write_translation_video(tmp_path / "short.avi", (1.0, 0.0), size=32, frames=3)
    settings = ClipSettings(width=32, height=32, num_frames=5, max_frames=10)
    with pytest.raises(ValueError, match="no clip of 5 frames"):
        prepare_video(short, tmp_path, settings)
    good = write_translation_video(tmp_path / "good.avi", (1.0, 0.0), size=32, frames=5)
    assert len(prepare_videos([short, good], tmp_path, settings)) == 1  # the short one is skipped
    with pytest.raises(ValueError, match="no video gives a clip"):
        prepare_videos([short], tmp_path, settings)
    with pytest.raises(ValueError, match="num_frames"):
        ClipSettings(num_frames=1)
    with pytest.raises(ValueError, match="flow_preset"):
        ClipSettings(flow_preset="raft")
    with pytest.raises(ValueError, match="max_frames"):
        ClipSettings(num_frames=25, max_frames=10)


def test_docstring_examples():
    import doctest

    import imagedynamics.train.long_animation_data as data
    import imagedynamics.train.refiner as refiner

    for module in (data, refiner):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__

"""Drawing -> motion (SparseTrajectoryToFlow's logic without ComfyUI): every format, brushes, per-track timing on
rendered frames, progress and interrupts, bounded memory."""
from __future__ import annotations

import json

import pytest
import torch

from imagedynamics.ops import sparse_to_dense as s2d
from imagedynamics.ops.drawn_motion import motion_from_drawing
from imagedynamics.ops.progress import Interrupted
from imagedynamics.ops.render import render_frames
from imagedynamics.ops.trajectories import Tracks, TrajectoryFormatError, resample_tracks

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 48, 64
PICTURE = torch.full((3, H, W), 0.5)

# The same motion written in every documented format: one drag from (20, 24) to (30, 28) (a 2-point track / arrow).
FORMATS = {
    "canonical arrows": json.dumps({"arrows": [{"start": [20, 24], "end": [30, 28], "speed": 1}]}),
    "canonical tracks": json.dumps({"coordinates": "pixels", "width": W, "height": H,
                                    "tracks": [[[20, 24], [25, 26], [30, 28]]]}),
    "canonical timed track": json.dumps({"tracks": [{"points": [[20, 24], [30, 28]], "easing": "linear"}]}),
    "arrow pairs": "[[[20, 24], [30, 28]]]",
    "arrow pair with speed": "[[[20, 24], [30, 28], 1.0]]",
    "arrow rows": "[[20, 24, 30, 28]]",
    "motion-i2v lines": "20,24,30,28\n",
    "kjnodes string": json.dumps([{"x": 20, "y": 24}, {"x": 30, "y": 28}]),
    "kjnodes list of strings": [json.dumps([{"x": 20, "y": 24}, {"x": 30, "y": 28}])],
    "dragnuwa one track": "[[20, 24], [25, 26], [30, 28]]",
    "dragnuwa tracks": "[[[20, 24], [25, 26], [30, 28]]]",
    "core TRACKS": {"track_path": torch.tensor([[[20.0, 24.0]], [[30.0, 28.0]]]),
                    "track_visibility": torch.ones(2, 1, dtype=torch.bool)},
}


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("mode", ["arrows", "tracks"])
def test_every_documented_format_moves_the_region_under_its_start(name, mode):
    drawn = motion_from_drawing(FORMATS[name], PICTURE, mode=mode, num_frames=5, threshold=0.0)
    displacement = drawn.motion.displacement
    assert displacement.shape == (5, 2, H, W) and torch.equal(displacement[0], torch.zeros(2, H, W))
    if mode == "arrows":  # a velocity of (10, 4) px per frame at the arrow's start, t frames of it
        assert torch.allclose(drawn.flow.velocity[0, :, 24, 20], torch.tensor([10.0, 4.0]), atol=1e-4)
        assert torch.allclose(displacement[3, :, 24, 20], torch.tensor([30.0, 12.0]), atol=1e-3)
        assert drawn.tracks.points[:, 0].tolist() == [[20.0, 24.0], [30.0, 28.0]]
    else:  # the start pixel arrives at the track's end on the last frame
        assert torch.equal(displacement[-1, :, 24, 20], torch.tensor([10.0, 4.0]))
        assert drawn.tracks.num_frames == 5 and drawn.tracks.points[-1, 0].tolist() == [30.0, 28.0]
    assert drawn.flow.mask is None


def test_strength_scales_and_the_arrow_tracks_carry_it():
    drawn = motion_from_drawing(FORMATS["canonical arrows"], PICTURE, num_frames=3, strength=0.5, threshold=0.0)
    assert torch.allclose(drawn.flow.velocity[0, :, 24, 20], torch.tensor([5.0, 2.0]), atol=1e-4)
    assert drawn.tracks.points[:, 0].tolist() == [[20.0, 24.0], [25.0, 26.0]]
    tracks = motion_from_drawing(FORMATS["dragnuwa tracks"], PICTURE, mode="tracks", num_frames=3, strength=0.5)
    assert torch.equal(tracks.motion.displacement[-1, :, 24, 20], torch.tensor([5.0, 2.0]))


def test_drawn_brush_adds_to_the_mask_and_nothing_outside_moves():
    doc = {"arrows": [{"start": [20, 24], "end": [30, 28]}],
           "brush": {"strokes": [{"points": [[20, 24], [24, 24]], "radius": 4}]}}
    mask = torch.zeros(H, W)
    mask[:, 50:] = 1.0
    drawn = motion_from_drawing(json.dumps(doc), PICTURE, num_frames=4, threshold=0.0, mask=mask)
    region = drawn.flow.mask[0, 0]
    assert region[24, 22] == 1 and region[10, 55] == 1 and region[10, 10] == 0  # the union of both
    moving = drawn.motion.displacement.abs().sum((0, 1)) > 0
    assert torch.equal(moving, region > 0)  # exactly zero outside, non-zero inside
    static = dict(doc, brush={"mode": "static", "strokes": doc["brush"]["strokes"]})
    inverted = motion_from_drawing(json.dumps(static), PICTURE, num_frames=4, threshold=0.0).flow.mask[0, 0]
    assert inverted[24, 22] == 0 and inverted[10, 10] == 1
    erased = dict(doc, brush={"strokes": [{"points": [[20, 24]], "radius": 3},
                                          {"points": [[20, 24]], "radius": 5, "erase": True}]})
    with pytest.raises(TrajectoryFormatError, match="^trajectories: expected a brush that covers at least one pixel"):
        motion_from_drawing(json.dumps(erased), PICTURE)


def test_errors_name_the_input():
    for bad, fragment in [("", "is empty"), ("[" * 1000 + "]" * 1000, "nested more than 8 deep"),
                          ('{"arrows": [{"start": [1, 2], "end": [3, 4], "speed": 1e308}]}', "out of range"),
                          ('{"tracks": [{"points": [[1, 2], [3, 4]], "end": 99}]}', "past the last frame 47")]:
        with pytest.raises(TrajectoryFormatError) as info:
            motion_from_drawing(bad, PICTURE, mode="tracks", input_name="trajectories")
        assert str(info.value).startswith("trajectories: ") and fragment in str(info.value), str(info.value)


# ----------------------------------------------------------------------------------------------------------------------
# Per-track timing
# ----------------------------------------------------------------------------------------------------------------------

def timed(start=None, end=None, easing=None, points=((8.0, 24.0), (40.0, 24.0))) -> str:
    track = {"points": [list(p) for p in points]}
    track.update({k: v for k, v in (("start", start), ("end", end), ("easing", easing)) if v is not None})
    return json.dumps({"tracks": [track]})


def test_timing_holds_travels_and_stays():
    drawn = motion_from_drawing(timed(start=2, end=6), PICTURE, mode="tracks", num_frames=10)
    x = drawn.motion.displacement[:, 0, 24, 8].tolist()
    assert x[:3] == [0.0, 0.0, 0.0] and x[6:] == [32.0] * 4  # sits before start, stays after end
    assert x[4] == pytest.approx(16.0, abs=1e-4)  # half-way in time, half-way along a straight path (linear)
    assert all(b > a for a, b in zip(x[2:6], x[3:7]))


@pytest.mark.parametrize("easing, expected", [
    ("linear", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("ease-in", [0.0, 0.25 ** 3, 0.125, 0.75 ** 3, 1.0]),
    ("ease-out", [0.0, 1 - 0.75 ** 3, 0.875, 1 - 0.25 ** 3, 1.0]),
    ("ease-in-out", [0.0, 4 * 0.25 ** 3, 0.5, 1 - 4 * 0.25 ** 3, 1.0]),
])
def test_easing_shapes_the_path_parameter(easing, expected):
    # a path of 33 evenly spaced points along x: the path parameter s is the distance travelled / 32
    points = [(8.0 + k, 24.0) for k in range(33)]
    tracks = resample_tracks(_parse(timed(easing=easing, points=points)), 5)
    s = ((tracks.points[:, 0, 0] - 8.0) / 32.0).tolist()
    assert s == pytest.approx(expected, abs=2e-4)


def _parse(text: str) -> Tracks:
    from imagedynamics.ops.trajectories import parse_trajectories

    return parse_trajectories(text, W, H)


def test_untimed_tracks_keep_todays_behaviour_exactly():
    bare = json.dumps({"tracks": [[[8, 24], [20, 30], [40, 24]]]})
    default = json.dumps({"tracks": [{"points": [[8, 24], [20, 30], [40, 24]], "start": 0, "end": 15}]})
    a = motion_from_drawing(bare, PICTURE, mode="tracks", num_frames=16).motion.displacement
    b = motion_from_drawing(default, PICTURE, mode="tracks", num_frames=16).motion.displacement
    assert torch.equal(a, b)
    assert _parse(json.dumps({"tracks": [{"points": [[8, 24], [40, 24]]}]})).timing is None


def test_timing_is_validated_with_named_errors():
    for text, fragment in [
        (timed(start=5, end=5), "track 0: 'end' (frame 5) must come after 'start' (frame 5)"),
        (timed(start=-1), "track 0: 'start' must be a frame index >= 0"),
        (timed(easing="bounce"), "track 0: unknown easing 'bounce'; expected one of linear, ease-in, ease-out"),
        (timed(start="soon"), "track 0, start: expected a number"),
        (json.dumps({"tracks": [{"points": [[1, 2], [3, 4]], "speed": 2}]}), "track 0: unknown key 'speed'"),
        (json.dumps({"tracks": [{"start": 1}]}), "track 0: expected a list of points or {\"points\""),
    ]:
        with pytest.raises(TrajectoryFormatError) as info:
            _parse(text)
        assert fragment in str(info.value), str(info.value)
    # checks that need the clip's length come when the tracks are resampled to it
    with pytest.raises(TrajectoryFormatError, match="track 0: 'end' is frame 12, past the last frame 9"):
        resample_tracks(_parse(timed(end=12)), 10, input_name="trajectories")
    with pytest.raises(TrajectoryFormatError, match="'end' \\(frame 9\\) must come after 'start' \\(frame 9\\)"):
        resample_tracks(_parse(timed(start=9)), 10)


def test_timing_round_trips_through_the_canonical_writer():
    from imagedynamics.ops.trajectories import TrackTiming, to_canonical_json

    text = json.dumps({"tracks": [{"points": [[8, 24], [20, 30]], "start": 4, "end": 20.5, "easing": "ease-in-out"},
                                  [[1, 2], [3, 4]],
                                  {"points": [[5, 6], [7, 8]], "end": 9, "easing": "ease-out"}]})
    tracks = _parse(text)
    assert tracks.timing == (TrackTiming(4, 20.5, "ease-in-out"), None, TrackTiming(None, 9, "ease-out"))
    written = to_canonical_json(tracks=tracks)
    assert json.loads(written)["tracks"][0] == {"points": [[8.0, 24.0], [20.0, 30.0]], "start": 4, "end": 20.5,
                                                "easing": "ease-in-out"}
    assert isinstance(json.loads(written)["tracks"][1], list)
    assert _parse(written) == tracks
    assert tracks.to("cpu") == tracks  # timing survives a device move


def test_a_timed_track_arrives_at_its_end_on_frame_k_in_the_rendered_frames():
    """A bright 5 x 5 square under a track's start; the track ends at frame k = 5 of 12: on the rendered frames the
    square's centroid is still before ``start``, reaches the end point at frame k and stays there."""
    picture = torch.zeros(1, 3, H, W)
    picture[:, :, 22:27, 6:11] = 1.0  # centred on (8, 24)
    k, start = 5, 1
    drawn = motion_from_drawing(timed(start=start, end=k, easing="ease-in-out"), picture[0], mode="tracks",
                                num_frames=12, sigma=64.0)  # the square moves as one piece
    frames, _ = render_frames(picture, drawn.motion.displacement)
    bright = frames[:, 0] > 0.5  # [T, H, W]
    xs = torch.arange(W, dtype=torch.float32)
    centroid_x = (bright.float() * xs).sum((1, 2)) / bright.float().sum((1, 2))
    assert centroid_x[: start + 1].tolist() == pytest.approx([8.0] * (start + 1), abs=0.05)
    assert float(centroid_x[k - 1]) < 39.0  # not there yet one frame before
    assert centroid_x[k:].tolist() == pytest.approx([40.0] * (12 - k), abs=0.25)  # arrived at frame k, stays


# ----------------------------------------------------------------------------------------------------------------------
# Progress, interrupts, bounded memory
# ----------------------------------------------------------------------------------------------------------------------

def many_arrows(n: int, seed: int = 0) -> str:
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(n, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    end = (start + torch.randn(n, 2, generator=g) * 3).clamp(torch.zeros(2), torch.tensor([W - 1.0, H - 1.0]))
    return json.dumps({"arrows": [{"start": s, "end": e} for s, e in zip(start.tolist(), end.tolist())]})


@pytest.mark.parametrize("mode, edge_aware", [("arrows", False), ("arrows", True), ("tracks", False)])
def test_progress_is_reported_and_raising_from_it_stops_the_loop(monkeypatch, mode, edge_aware):
    monkeypatch.setattr(s2d, "CHUNK_ELEMENTS", 4 * H * W)  # 4 arrows or tracks per chunk
    text = many_arrows(20)
    seen = []
    motion_from_drawing(text, PICTURE, mode=mode, edge_aware=edge_aware, num_frames=4,
                        progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == 5  # 20 / 4 chunks, the last one reported as done
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    calls = []

    def stop(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise Interrupted("stop")

    with pytest.raises(Interrupted):
        motion_from_drawing(text, PICTURE, mode=mode, edge_aware=edge_aware, num_frames=4, progress=stop)
    assert len(calls) == 2  # nothing ran after the callback raised


def test_arrows_and_tracks_are_taken_in_bounded_chunks_with_the_same_result(monkeypatch):
    text = many_arrows(30, seed=1)
    whole = {m: motion_from_drawing(text, PICTURE, mode=m, num_frames=6, sigma=9.0, threshold=0.0).motion
             for m in ("arrows", "tracks")}
    sizes = []
    squared = s2d._squared_distances

    def spy(points, xs, ys):
        out = squared(points, xs, ys)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(s2d, "_squared_distances", spy)
    monkeypatch.setattr(s2d, "CHUNK_ELEMENTS", 7 * H * W)
    for mode in ("arrows", "tracks"):
        sizes.clear()
        chunked = motion_from_drawing(text, PICTURE, mode=mode, num_frames=6, sigma=9.0, threshold=0.0).motion
        assert len(sizes) == 5 and max(sizes) <= 7 * H * W  # 30 items in chunks of 7: memory per chunk, not per N
        assert torch.allclose(chunked.displacement, whole[mode].displacement, atol=1e-4), mode

"""Trajectory / arrow / brush parsing: every supported format, exact round trips, clear errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from imagedynamics.ops.trajectories import (
    Arrows,
    BrushStrokes,
    Tracks,
    TrajectoryFormatError,
    TrajectoryWarning,
    arrows_to_json,
    arrows_to_tracks,
    parse_arrows,
    parse_brush,
    parse_trajectories,
    resample_tracks,
    to_canonical_json,
    tracks_from_comfy,
    tracks_to_arrows,
    tracks_to_comfy,
    tracks_to_json,
)

W, H = 160, 120
# two tracks of 4 points each, values exactly representable in float32 and in decimal
TRACK_A = [(10.0, 20.0), (15.5, 22.0), (21.25, 25.0), (30.0, 30.0)]
TRACK_B = [(100.0, 50.0), (98.0, 60.5), (95.0, 70.0), (90.75, 80.0)]


def reference() -> Tracks:
    pts = torch.tensor([TRACK_A, TRACK_B], dtype=torch.float32).permute(1, 0, 2)  # [T, N, 2]
    return Tracks(pts)


def kj_string(track) -> str:
    return json.dumps([{"x": x, "y": y} for x, y in track])


FORMATS = {
    "canonical": json.dumps({"version": 1, "coordinates": "pixels", "tracks": [TRACK_A, TRACK_B]}),
    "canonical_no_declaration": json.dumps({"tracks": [TRACK_A, TRACK_B]}),
    "dragnuwa_json": json.dumps([TRACK_A, TRACK_B]),
    "dragnuwa_list": [[list(p) for p in TRACK_A], [list(p) for p in TRACK_B]],
    "kjnodes_list_of_lists": json.dumps([[{"x": x, "y": y} for x, y in t] for t in (TRACK_A, TRACK_B)]),
    "kjnodes_list_of_strings": [kj_string(TRACK_A), kj_string(TRACK_B)],
    "kjnodes_single_quotes": [kj_string(TRACK_A).replace('"', "'"), kj_string(TRACK_B).replace('"', "'")],
    "comfy_tracks_tensor": {"track_path": torch.tensor([TRACK_A, TRACK_B]).permute(1, 0, 2),
                            "track_visibility": torch.ones(4, 2, dtype=torch.bool)},
    "comfy_tracks_nested_list": {"track_path": [[list(a), list(b)] for a, b in zip(TRACK_A, TRACK_B)]},
    "tensor": torch.tensor([TRACK_A, TRACK_B], dtype=torch.float64).permute(1, 0, 2),
    "polyline_lines": "\n".join(",".join(f"{v:g}" for p in t for v in p) for t in (TRACK_A, TRACK_B)),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_parses_to_the_same_tracks(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in-picture input: no clipping warning
        got = parse_trajectories(FORMATS[name], W, H)
    assert got == reference(), name


def test_kjnodes_single_track_string():
    got = parse_trajectories(kj_string(TRACK_A), W, H)
    assert got == Tracks(torch.tensor([TRACK_A])[0][:, None])


def test_motion_i2v_lines_are_two_point_tracks():
    text = "10,20,30,40\n\n# comment\n 50 60 70 80.5 \n"
    got = parse_trajectories(text, W, H)
    expected = Tracks(torch.tensor([[[10.0, 20.0], [50.0, 60.0]], [[30.0, 40.0], [70.0, 80.5]]]))
    assert got == expected


def test_two_point_formats_agree():
    lines = "10,20,30,40\n50,60,70,80"
    pairs = json.dumps([[[10, 20], [30, 40]], [[50, 60], [70, 80]]])
    canonical_arrows = json.dumps({"arrows": [{"start": [10, 20], "end": [30, 40]}, {"start": [50, 60], "end": [70, 80]}]})
    a, b, c = (parse_trajectories(x, W, H) for x in (lines, pairs, canonical_arrows))
    assert a == b == c


def test_comfy_round_trip_exact():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(7, 5, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    vis = torch.rand(7, 5, generator=g) > 0.3
    tracks = Tracks(pts, vis)
    comfy = tracks_to_comfy(tracks)
    assert comfy["track_path"].dtype == torch.float32 and comfy["track_visibility"].dtype == torch.bool
    assert tuple(comfy["track_path"].shape) == (7, 5, 2)
    back = tracks_from_comfy(comfy)
    assert back == tracks
    assert torch.equal(back.points, pts) and torch.equal(back.visibility, vis)
    assert parse_trajectories(comfy, W, H) == tracks  # the parser keeps TRACKS exact too
    # the core's WanMoveTracksFromCoords writes a per-frame visibility [T, 1] (from a mask): broadcast over tracks
    per_frame = torch.tensor([True, False, True, True, True, True, True])[:, None]
    broadcast = tracks_from_comfy({"track_path": pts, "track_visibility": per_frame})
    assert torch.equal(broadcast.visibility, per_frame.expand(7, 5))


def test_canonical_json_round_trip_exact_with_visibility():
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(6, 3, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])  # not decimal-representable
    vis = torch.ones(6, 3, dtype=torch.bool)
    vis[2, 1] = False
    tracks = Tracks(pts, vis)
    text = tracks_to_json(tracks)
    assert json.loads(text)["visibility"][1][2] is False
    assert parse_trajectories(text, W, H) == tracks
    tiny = Tracks(torch.tensor([[[0.25, 0.5]], [[0.75, 1.0]]]))  # pixel coordinates that look normalised
    assert parse_trajectories(tracks_to_json(tiny), W, H) == tiny


def test_arrows_round_trip_exact():
    g = torch.Generator().manual_seed(2)
    start = torch.rand(4, 2, generator=g) * 100
    end = torch.rand(4, 2, generator=g) * 100
    speed = torch.rand(4, generator=g) * 3
    arrows = Arrows(start, end, speed)
    assert parse_arrows(arrows_to_json(arrows), W, H) == arrows
    assert parse_arrows(arrows, W, H) == arrows


def test_arrow_formats_agree():
    expected = Arrows(torch.tensor([[10.0, 20.0], [50.0, 60.0]]), torch.tensor([[30.0, 40.0], [70.0, 80.0]]),
                      torch.tensor([1.0, 2.5]))
    variants = [
        json.dumps([[[10, 20], [30, 40]], [[50, 60], [70, 80], 2.5]]),
        [[[10, 20], [30, 40], 1.0], [[50, 60], [70, 80], 2.5]],
        json.dumps([{"start": [10, 20], "end": [30, 40]}, {"start": [50, 60], "end": [70, 80], "speed": 2.5}]),
        json.dumps([[10, 20, 30, 40], [50, 60, 70, 80, 2.5]]),
        "10,20,30,40\n50,60,70,80,2.5",
        json.dumps({"arrows": [[[10, 20], [30, 40]], {"start": [50, 60], "end": [70, 80], "speed": 2.5}]}),
    ]
    for v in variants:
        assert parse_arrows(v, W, H) == expected, v


def test_arrows_from_tracks_and_back():
    arrows = parse_arrows(FORMATS["dragnuwa_json"], W, H)  # first -> last point of each track, speed 1
    assert torch.equal(arrows.start, torch.tensor([TRACK_A[0], TRACK_B[0]]))
    assert torch.equal(arrows.end, torch.tensor([TRACK_A[-1], TRACK_B[-1]]))
    assert torch.equal(arrows.speed, torch.ones(2))
    assert tracks_to_arrows(reference()) == arrows
    # a speed stretches the arrow when it becomes a trajectory
    t = parse_trajectories('[[[10, 20], [30, 40], 2.0]]', W, H)
    assert t.points[:, 0].tolist() == [[10.0, 20.0], [50.0, 60.0]]
    t3 = arrows_to_tracks(Arrows(torch.tensor([[0.0, 0.0]]), torch.tensor([[4.0, 8.0]]), torch.tensor([0.5])), 3)
    assert t3.points[:, 0].tolist() == [[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]]


def test_canonical_prefers_tracks_for_trajectories_and_arrows_for_arrows():
    doc = json.dumps({"arrows": [{"start": [1, 2], "end": [3, 4]}], "tracks": [[[5, 6], [7, 8], [9, 10]]]})
    assert parse_trajectories(doc, W, H).points[:, 0].tolist() == [[5, 6], [7, 8], [9, 10]]
    a = parse_arrows(doc, W, H)
    assert a.start.tolist() == [[1, 2]] and a.end.tolist() == [[3, 4]]


def test_normalised_coordinates():
    w, h = 101, 51
    got = parse_trajectories([[0.0, 0.5], [1.0, 1.0]], w, h)  # auto: every value in [0, 1]
    assert got.points[:, 0].tolist() == [[0.0, 25.0], [100.0, 50.0]]
    kept = parse_trajectories([[0.0, 0.5], [1.0, 1.0]], w, h, normalized=False)
    assert kept.points[:, 0].tolist() == [[0.0, 0.5], [1.0, 1.0]]
    declared = parse_trajectories({"coordinates": "normalized", "tracks": [[[0.5, 0.0], [0.25, 1.0]]]}, w, h)
    assert declared.points[:, 0].tolist() == [[50.0, 0.0], [25.0, 50.0]]
    forced = parse_trajectories("0.5,0,0.25,1", w, h, normalized=True)
    assert forced == declared
    # TRACKS are pixels by definition: never auto-normalised
    comfy = parse_trajectories({"track_path": torch.tensor([[[0.5, 0.5]], [[1.0, 1.0]]])}, w, h)
    assert comfy.points[:, 0].tolist() == [[0.5, 0.5], [1.0, 1.0]]
    # a canonical document drawn on another picture size is rescaled (pixel centres: (W-1) / (w0-1))
    resized = parse_trajectories({"width": 51, "height": 26, "tracks": [[[10, 5], [50, 25]]]}, w, h)
    assert resized.points[:, 0].tolist() == [[20.0, 10.0], [100.0, 50.0]]


def test_points_outside_are_clipped_with_a_warning_or_rejected():
    text = json.dumps([[[10, 20], [200, -5], [30, 40]]])
    with pytest.warns(TrajectoryWarning, match=r"^drag: 1 point\(s\) outside the 160x120 picture"):
        got = parse_trajectories(text, W, H, input_name="drag")
    assert got.points[1, 0].tolist() == [W - 1.0, 0.0]
    assert got.points[0, 0].tolist() == [10.0, 20.0]
    with pytest.raises(TrajectoryFormatError, match=r"^drag: track 0, point 1 at \(200, -5\) is outside"):
        parse_trajectories(text, W, H, input_name="drag", out_of_bounds="error")
    with pytest.warns(TrajectoryWarning):
        a = parse_arrows("10,10,500,10", W, H)
    assert a.end.tolist() == [[W - 1.0, 10.0]]


MALFORMED = [
    ("[[1, 2], [3, 4]", "unbalanced JSON at char 15"),
    ("[[1, 2], [3, 4]]]", "unbalanced JSON at char 16"),
    ('{"tracks": [[[1, 2], [3, 4]]}}', "unbalanced JSON at char 28"),
    ("[[1, 2,], [3, 4]]", "invalid JSON at char"),
    ('[[[1, 2], ["abc", 3]]]', "track 0, point 1: expected [x, y] numbers, got ['abc', 3]"),
    ("[[[[1, 2]], [[3, 4]]]]", "track 0, point 0: expected [x, y] numbers"),
    ("[[NaN, 1], [2, 3]]", "track 0, point 0: coordinate is NaN"),
    ("[[1, 2], [Infinity, 3]]", "track 0, point 1: coordinate is NaN or infinite"),
    ("[[[1, 2], [3, 4]], []]", "track 1 is empty"),
    ("[[[5, 5]]]", "track 0 has only 1 point"),
    ("[]", "empty list"),
    ("", "is empty"),
    ("   \n ", "is empty"),
    ("[1, 2]", "single point"),
    ('{"x": 1, "y": 2}', "single point"),
    ('[{"x": 1}, {"x": 2, "y": 3}]', "track 0, point 0: expected {\"x\": .., \"y\": ..}"),
    ('{"trakcs": [[[1, 2], [3, 4]]]}', "unknown key 'trakcs'"),
    ('{"tracks": [[1, 2], [3, 4]]}', "wrap it in one more"),
    ('{"tracks": {"a": 1}}', "'tracks' must be a list"),
    ('{"tracks": [[[1, 2], [3, 4]]], "visibility": [[true]]}', "visibility of track 0"),
    ('{"coordinates": "inches", "tracks": [[[1, 2], [3, 4]]]}', "'coordinates' must be"),
    ("10,20,30", "line 1: expected 4 numbers"),
    ("10,20,30,40\n1,2,x,4", "line 2: expected numbers"),
    ("10,nan,30,40", "line 1: coordinate is NaN"),
    ({"track_path": torch.zeros(3, 2, 3)}, "track_path must be [T, N, 2]"),
    ({"track_path": torch.zeros(0, 2, 2)}, "no tracks"),
    ({"track_path": torch.tensor([[[1.0, float("nan")]]])}, "frame 0, track 0: coordinate is nan"),
    ({"track_path": torch.zeros(3, 2, 2), "track_visibility": torch.ones(3, 3)}, "track_visibility must be [T, N]"),
    ({"track_path": [[[1, 2]], [[3]]]}, "ragged or non-numeric"),
    (None, "no input"),
    (42, "unsupported input of type int"),
]


@pytest.mark.parametrize("bad,fragment", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_trajectories_raise_a_clear_error(bad, fragment):
    with pytest.raises(TrajectoryFormatError) as info:
        parse_trajectories(bad, W, H, input_name="my_tracks")
    message = str(info.value)
    assert message.startswith("my_tracks: "), message
    assert fragment in message, message
    assert info.value.input_name == "my_tracks"
    assert isinstance(info.value, ValueError)


MALFORMED_ARROWS = [
    ("[[[1, 2], [1, 2]]]", "arrow 0 has zero length"),
    ("5,5,5,5", "line 1 has zero length"),
    ('[{"start": [1, 2]}]', "arrow 0: expected {\"start\""),
    ('[{"start": [1, 2], "end": [3, 4], "speed": NaN}]', "arrow 0, speed: nan is not a finite number"),
    ('[{"start": [1, 2], "end": [3, 4], "speed": "fast"}]', "arrow 0, speed: expected a number"),
    ('[[[1, 2], [3, 4], "x"]]', "track 0, point 2"),
    ("[[1, 2], [3, 4]", "unbalanced JSON"),
]


@pytest.mark.parametrize("bad,fragment", MALFORMED_ARROWS, ids=[str(i) for i in range(len(MALFORMED_ARROWS))])
def test_malformed_arrows_raise_a_clear_error(bad, fragment):
    with pytest.raises(TrajectoryFormatError) as info:
        parse_arrows(bad, W, H, input_name="arrows_in")
    assert str(info.value).startswith("arrows_in: "), str(info.value)
    assert fragment in str(info.value), str(info.value)


def test_tracks_of_different_lengths_are_resampled_with_pchip():
    got = parse_trajectories([[[0, 0], [30, 60]], [[50, 50], [60, 50], [70, 55], [80, 60], [90, 70]]], W, H)
    assert got.num_frames == 5 and got.num_tracks == 2
    assert got.points[:, 1].tolist() == [[50, 50], [60, 50], [70, 55], [80, 60], [90, 70]]  # longest kept exactly
    # the 2-point track becomes a straight line sampled at 5 equal times
    expected = [[7.5 * k, 15.0 * k] for k in range(5)]
    assert torch.allclose(got.points[:, 0], torch.tensor(expected), atol=1e-5)


def test_resample_is_monotone_without_overshoot():
    step = [0.0, 0.0, 0.0, 10.0, 10.0, 10.0]
    tracks = Tracks(torch.tensor([[[x, 2.0 * x]] for x in step]))
    out = resample_tracks(tracks, 51).points[:, 0, 0]
    assert out[0] == 0.0 and out[-1] == 10.0
    assert float(out.min()) >= 0.0 and float(out.max()) <= 10.0  # a natural cubic spline would overshoot here
    assert bool((out[1:] >= out[:-1]).all())
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(np.linspace(0, 1, 6), step)(np.linspace(0, 1, 51))
    assert spline.max() > 10.05 or spline.min() < -0.05  # the property above is not trivial
    # identity at the same length
    assert resample_tracks(reference(), 4) == reference()


def test_resample_arclength_gives_constant_speed():
    tracks = Tracks(torch.tensor([[[0.0, 5.0]], [[1.0, 5.0]], [[10.0, 5.0]]]))
    by_length = resample_tracks(tracks, 11, parameter="arclength").points[:, 0, 0]
    assert torch.allclose(by_length, torch.arange(11.0), atol=1e-5)
    by_index = resample_tracks(tracks, 11).points[:, 0, 0]
    assert abs(float(by_index[5]) - 1.0) < 1e-5  # the middle drawn point is reached half-way in time


def test_resample_visibility_nearest():
    vis = torch.tensor([[True], [False], [True]])
    out = resample_tracks(Tracks(torch.zeros(3, 1, 2), vis), 5)
    # new times 0, .25, .5, .75, 1 against old times 0, .5, 1: nearest old point, ties to the earlier one
    assert out.visibility[:, 0].tolist() == [True, True, False, False, True]


def test_brush_strokes():
    doc = {"tracks": [[[1, 2], [3, 4]]],
           "brush": {"mode": "static", "strokes": [{"points": [[20, 20], [60, 20]], "radius": 5},
                                                   {"points": [[40, 20]], "radius": 3, "erase": True}]}}
    brush = parse_brush(json.dumps(doc), W, H)
    assert isinstance(brush, BrushStrokes) and brush.invert
    mask = brush.to_mask(H, W)
    assert mask.shape == (H, W)
    assert mask[20, 20] == 1 and mask[20, 60] == 1 and mask[24, 30] == 1  # inside the thick line
    assert mask[20, 40] == 0  # erased
    assert mask[30, 30] == 0 and mask[20, 70] == 0  # outside
    assert parse_trajectories(json.dumps(doc), W, H).num_tracks == 1  # the brush does not disturb parsing
    assert parse_brush(json.dumps({"tracks": [[[1, 2], [3, 4]]]}), W, H) is None
    with pytest.raises(TrajectoryFormatError, match="^brush: brush mode must be"):
        parse_brush({"brush": {"mode": "wiggle", "strokes": []}}, W, H)
    again = parse_brush(to_canonical_json(brush=brush), W, H)
    assert again.mode == "static" and len(again.strokes) == 2
    assert np.array_equal(again.strokes[0][0], brush.strokes[0][0]) and again.strokes[1][2] is True


def test_containers_validate_shapes():
    with pytest.raises(ValueError, match=r"\[T, N, 2\]"):
        Tracks(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="visibility"):
        Tracks(torch.zeros(3, 2, 2), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="speed"):
        Arrows(torch.zeros(2, 2), torch.ones(2, 2), torch.ones(3))
    t = reference()
    assert t.num_frames == 4 and t.num_tracks == 2 and t.visibility.all()


HOSTILE = [
    ("[" * 1000 + "]" * 1000, "nested more than 8 deep"),
    ("[" * 100000 + "]" * 100000, "nested more than 8 deep"),
    ('{"tracks": ' + "[" * 20 + "]" * 20 + "}", "nested more than 8 deep"),
    ('{"tracks": ' + "[" * 20 + "]" * 19 + "}", "brackets nested more than 8 deep at char 18"),
    ('{"arrows": [{"start": [1, 2], "end": [3, 4], "speed": 1e308}]}', "arrow 0, speed: 1e+308 is out of range"),
    ("1,2,3,4,1e308", "line 1, speed: 1e+308 is out of range"),
    ('[[[1, 2], [3, 1e300]]]', "track 0, point 1: coordinate (3, 1e+300) is far outside any picture"),
    ({"track_path": torch.tensor([[[1.0, 2.0]], [[3.0, 4e7]]])}, "frame 1, track 0: coordinate (3, 4e+07) is far"),
    ('{"tracks": [[[1, 2], [3, 4]]], "brush": {"strokes": [{"points": [[1, 2]], "radius": 1e9}]}}',
     "stroke 0, radius: 1e+09 is out of range"),
    ('{"tracks": [[[1, 2], [3, 4]]], "brush": {"strokes": [{"points": [[1, NaN]]}]}}',
     "stroke 0, point 0: coordinate is NaN"),
]


@pytest.mark.parametrize("bad,fragment", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_input_is_refused_by_the_shared_prologue(bad, fragment):
    with pytest.raises(TrajectoryFormatError) as info:
        parse_arrows(bad, W, H, input_name="trajectories")
    assert str(info.value).startswith("trajectories: ") and fragment in str(info.value), str(info.value)


def test_deep_python_lists_and_too_many_numbers_are_refused_without_recursion(monkeypatch):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(TrajectoryFormatError, match="lists nested more than 8 deep"):
        parse_trajectories(deep, W, H)
    from imagedynamics.ops.trajectories import validation

    monkeypatch.setattr(validation, "MAX_NUMBERS", 1000)
    many = [[[1.0, 2.0]] * 251] * 2
    with pytest.raises(TrajectoryFormatError, match="more than 1,000 numbers"):
        parse_trajectories(many, W, H)
    with pytest.raises(TrajectoryFormatError, match="more than 1,000 numbers"):
        parse_trajectories(json.dumps(many), W, H)
    with pytest.raises(TrajectoryFormatError, match="line 126: more than 1,000 numbers"):
        parse_trajectories("1,2,3,4,5,6,7,8\n" * 126, W, H)
    assert parse_trajectories([[[1.0, 2.0]] * 250] * 2, W, H).num_frames == 250


def test_a_brush_is_read_only_where_the_input_holds_one():
    for text in ("10,20,30,40", "[[[1, 2], [3, 4]]]", '[{"x": 1, "y": 2}, {"x": 3, "y": 4}]',
                 {"track_path": torch.zeros(2, 1, 2)}, '{"tracks": [[[1, 2], [3, 4]]]}', ""):
        assert parse_brush(text, W, H) is None, text
    stroke_only = parse_brush({"mode": "static", "strokes": [{"points": [[5, 5]], "radius": 2}]}, W, H)
    assert stroke_only.invert and stroke_only.strokes[0][1] == 2.0
    # a radius far beyond the picture paints all of it (and OpenCV's integers stay small)
    huge = parse_brush('{"brush": {"strokes": [{"points": [[5, 5]], "radius": 900000}]}}', W, H)
    assert bool((huge.to_mask(H, W) == 1).all())

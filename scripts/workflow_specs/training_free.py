"""Training-free example graphs: arrows, trajectories, brushes, spectral motion, reference video, drag dynamics."""
from __future__ import annotations

import json

from workflow_format import Node, Workflow, grouped

EXAMPLE_PICTURE = "astronaut.png"
REFERENCE_VIDEO = "big_buck_bunny.mp4"
PICTURE_SIZE = (320, 360)  # a Load Image node showing its picture
EDITOR_SIZE = (470, 860)   # Sparse Trajectory To Flow with its drawing area
SAVE_SIZE = (420, 460)     # a Save node showing the animation

# The flag behind the astronaut ripples down and to the right; the rest of the picture stays still. Arrows about
# 22 px long (visible and easy to grab in the editor) at speed 0.01: about 0.22 px per frame, 10 px over the loop;
# the Gaussian field adds the arrows up, to 0.6 px per frame at most. Faster motion makes each region's cross-fade a
# bigger change (at this speed every frame's flag keeps >= 0.9 of frame 0's sharpness: bench/bench_loops.py).
FLAG_ARROWS = {"arrows": [
    {"start": [22, 60], "end": [42, 68], "speed": 0.01},
    {"start": [60, 120], "end": [80, 130], "speed": 0.01},
    {"start": [35, 220], "end": [55, 232], "speed": 0.01},
    {"start": [12, 380], "end": [32, 390], "speed": 0.01},
]}


def picture(node_id: int = 1) -> Node:
    return Node(node_id, "LoadImage", {"image": EXAMPLE_PICTURE}, size=PICTURE_SIZE)


def save(node_id: int, render: int, name: str, fps: float | None = None, lossless: bool = True) -> Node:
    """An animated WebP of ``render``'s frames, at the frame rate the renderer passes on (or ``fps`` when given).

    ``lossless`` (every example's default): lossy WebP (quality 90) re-encodes a key frame every few frames, and a
    small, slow motion then pops at each one (measured on the cinemagraph: steps 4x the typical step), and still
    pixels change; lossless keeps the loop's steps and the still pixels exact."""
    links = {"images": (render, 0)} if fps is not None else {"images": (render, 0), "fps": (render, 1)}
    return Node(node_id, "SaveAnimatedWEBP", {"filename_prefix": f"ImageDynamics/{name}", "fps": fps or 24.0,
                                              "lossless": lossless, "quality": 90, "method": "default"},
                links, size=SAVE_SIZE)


def cinemagraph() -> Workflow:
    """The default workflow: a photo animated by arrows into a seamless loop, no weights."""
    return Workflow("Cinemagraph: arrows on a photo, a seamless loop (no weights)", """
Draw arrows on the picture in **Sparse Trajectory To Flow** (Arrow tool; an arrow's length x its speed is its motion
in pixels per frame). Load Image's mask is the motion brush: here the transparent flag of astronaut.png, so only the
flag moves (paint your own picture's moving part in the mask editor). **Eulerian Motion** integrates the arrows'
velocity field into a seamless loop, **Softmax Splat Render** makes the frames and passes the frame rate on to the
Save node; **Preview Motion** shows the field as colours (hue = direction, saturation = speed).""", [
        picture(),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_ARROWS), "mode": "arrows", "num_frames": 48},
             {"image": (1, 0), "mask": (1, 1)}, size=EDITOR_SIZE),
        Node(3, "EulerianMotion", {"num_frames": 48, "fps": 24.0, "loop": "seamless loop"}, {"flow": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "cinemagraph"),
        Node(6, "PreviewMotion", {"opacity": 0.6}, {"image": (1, 0), "flow": (2, 0), "tracks": (2, 2), "mask": (1, 1)}),
        Node(7, "PreviewImage", {}, {"images": (6, 0)}, size=PICTURE_SIZE),
    ])


# A trajectory across the flag: the region under its start is dragged along it over the frames.
FLAG_TRACK = {"tracks": [[[40, 120], [52, 135], [60, 160], [58, 185]]]}
# Arrows with the motion brush painted in the same document, as the canvas editor writes it. 22 px arrows at speed
# 0.018: 0.4 px per frame, about 6 px at the ping-pong's turn; at 1.5 (8 px per frame) the stars of the canton
# smear into a blur.
BRUSHED_ARROWS = {"arrows": [{"start": [40, 100], "end": [55.6, 115.6], "speed": 0.018},
                             {"start": [30, 330], "end": [43.2, 347.6], "speed": 0.018}],
                  "brush": {"mode": "move", "strokes": [{"points": [[40, 40], [50, 200], [30, 380]],
                                                          "radius": 30, "erase": False}]}}


def drag_region() -> Workflow:
    return Workflow("Drag a region along a path (no weights)", """
Draw a path with the Track tool of **Sparse Trajectory To Flow** (mode `tracks`): the region under its start follows
it over the frames, and pixels outside the motion brush (Load Image's mask: the flag) never move. The node's
second output is the motion itself; **Softmax Splat Render** renders it.""", [
        picture(),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                           "num_frames": 24}, {"image": (1, 0), "mask": (1, 1)}, size=EDITOR_SIZE),
        Node(3, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (2, 1)}),
        save(4, 3, "drag_region"),
        Node(5, "PreviewMotion", {"opacity": 0.6}, {"image": (1, 0), "motion": (2, 1), "tracks": (2, 2)}),
        Node(6, "PreviewImage", {}, {"images": (5, 0)}, size=PICTURE_SIZE),
    ])


def arrows_with_brush() -> Workflow:
    return Workflow("Arrows and a painted motion brush, ping-pong (no weights)", """
The arrows and the motion brush are drawn in one document: paint the brush with the Brush tool of **Sparse Trajectory
To Flow** instead of using a mask. `edge_aware` keeps each arrow's motion on its side of colour edges. **Eulerian
Motion** plays the motion forward, then back (`ping-pong`).""", [
        picture(),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(BRUSHED_ARROWS), "mode": "arrows",
                                           "num_frames": 32, "edge_aware": True}, {"image": (1, 0)},
             size=EDITOR_SIZE),
        Node(3, "EulerianMotion", {"num_frames": 32, "fps": 24.0, "loop": "ping-pong"}, {"flow": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "arrows_with_brush"),
    ])


def spectral_sway() -> Workflow:
    return Workflow("Natural sway from a mask: GID's spectral motion, procedural (no weights)", """
**Spectral Volume Sampler** (`procedural`) draws a spectral volume, GID's representation of oscillating motion (16
temporal frequencies per pixel, power falling off with frequency as in real footage of trees, flags and water), for
the masked region and a wind direction. **Spectrum To Motion** turns it into a whole period of motion (a seamless
loop). **Preview Spectrum** shows the power of each frequency.""", [
        picture(),
        Node(2, "SpectralVolumeSampler", {"source": "procedural", "num_frequencies": 16, "period_frames": 48,
                                          "fps": 24.0, "strength": 5.0, "wind_direction": 20.0, "seed": 7},
             {"image": (1, 0), "mask": (1, 1)}),
        Node(3, "SpectrumToMotion", {"num_frames": 48}, {"spectrum": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "spectral_sway"),
        Node(6, "PreviewSpectrum", {"max_frequencies": 4}, {"spectrum": (2, 0)}),
        Node(7, "PreviewImage", {}, {"images": (6, 1)}, size=(420, 260)),
    ])


def motion_transfer_video() -> Workflow:
    return Workflow("Motion transfer: a video's motion on a picture (no weights)", """
**Motion From Video** measures how every pixel of the clip's first frame moves (OpenCV DIS optical flow, no
weights; the clip's frame rate comes from Get Video Components). **Spectral Volume Sampler** (`reference motion`)
keeps its 16 lowest temporal frequencies and puts them on the picture's masked region, so the result loops.""", [
        *grouped("Reference motion", [
            Node(2, "LoadVideo", {"file": REFERENCE_VIDEO}, size=PICTURE_SIZE),
            Node(3, "GetVideoComponents", {}, {"video": (2, 0)}),
            Node(4, "MotionFromVideo", {"max_frames": 32, "stride": 1}, {"frames": (3, 0), "fps": (3, 2)}),
        ]),
        *grouped("On the picture", [
            picture(),
            Node(5, "SpectralVolumeSampler", {"source": "reference motion", "num_frequencies": 16,
                                              "period_frames": 32, "fps": 25.0, "strength": 1.0},
                 {"image": (1, 0), "mask": (1, 1), "reference_motion": (4, 0)}),
            Node(6, "SpectrumToMotion", {"num_frames": 32}, {"spectrum": (5, 0)}),
            Node(7, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (6, 0)}),
            save(8, 7, "motion_transfer_video"),
        ]),
    ])


def drag_and_release() -> Workflow:
    return Workflow("Drag and release: pull the flag, let go (no weights)", """
GID's image-space modal dynamics: the spectral volume of the flag (here a procedural one; a trained GID prior's in
the GID workflows) is used as a basis of vibration modes. **Interactive Dynamics** pulls the point (x, y) by
(dx, dy) pixels for `hold_frames` frames, lets go, and each mode rings down with the given damping.""", [
        picture(),
        Node(2, "SpectralVolumeSampler", {"source": "procedural", "num_frequencies": 16, "period_frames": 60,
                                          "fps": 30.0, "strength": 4.0, "seed": 3},
             {"image": (1, 0), "mask": (1, 1)}),
        Node(3, "InteractiveDynamics", {"x": 50.0, "y": 200.0, "dx": 14.0, "dy": 4.0, "damping": 0.08,
                                        "hold_frames": 8, "num_frames": 45, "fps": 30.0}, {"spectrum": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "drag_and_release"),
    ])


WORKFLOWS = {"cinemagraph": cinemagraph, "drag_region": drag_region, "arrows_with_brush": arrows_with_brush,
             "spectral_sway": spectral_sway, "motion_transfer_video": motion_transfer_video,
             "drag_and_release": drag_and_release}

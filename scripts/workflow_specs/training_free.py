"""Training-free example graphs: arrows, trajectories, brushes, spectral motion, reference video, drag dynamics."""
from __future__ import annotations

import json

from workflow_format import Node

EXAMPLE_PICTURE = "astronaut.png"

# The flag behind the astronaut ripples down and to the right; the rest of the picture stays still.
FLAG_ARROWS = {"arrows": [
    {"start": [30, 60], "end": [31, 60.4], "speed": 0.2},
    {"start": [70, 120], "end": [71, 120.5], "speed": 0.2},
    {"start": [40, 220], "end": [41, 220.6], "speed": 0.2},
    {"start": [20, 380], "end": [21, 380.5], "speed": 0.2},
]}


def cinemagraph() -> list[Node]:
    """The default workflow: a photo animated by arrows into a seamless loop, no weights."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_ARROWS), "mode": "arrows", "num_frames": 48},
             {"image": (1, 0), "mask": (1, 1)}, size=(470, 860)),
        Node(3, "EulerianMotion", {"num_frames": 48, "fps": 24.0, "loop": "seamless loop"}, {"flow": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        Node(5, "SaveAnimatedWEBP", {"filename_prefix": "ImageDynamics/cinemagraph", "fps": 24.0,
                                     "lossless": False, "quality": 90, "method": "default"},
             {"images": (4, 0)}, size=(420, 460)),
        Node(6, "PreviewMotion", {"opacity": 0.6}, {"image": (1, 0), "flow": (2, 0), "tracks": (2, 2), "mask": (1, 1)}),
        Node(7, "PreviewImage", {}, {"images": (6, 0)}, size=(320, 360)),
    ]


def save(node_id: int, source: int, name: str, fps: float = 24.0) -> Node:
    return Node(node_id, "SaveAnimatedWEBP", {"filename_prefix": f"ImageDynamics/{name}", "fps": fps,
                                              "lossless": False, "quality": 90, "method": "default"},
                {"images": (source, 0)}, size=(420, 460))


# A trajectory across the flag: the region under its start is dragged along it over the frames.
FLAG_TRACK = {"tracks": [[[40, 120], [52, 135], [60, 160], [58, 185]]]}
# Arrows with the motion brush painted in the same document, as the canvas editor writes it.
BRUSHED_ARROWS = {"arrows": [{"start": [40, 100], "end": [44, 104], "speed": 1.5},
                             {"start": [30, 330], "end": [33, 334], "speed": 1.0}],
                  "brush": {"mode": "move", "strokes": [{"points": [[40, 40], [50, 200], [30, 380]],
                                                          "radius": 30, "erase": False}]}}


def drag_region() -> list[Node]:
    """A drawn path drags the region under its start along it; pixels outside the brush never move."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                           "num_frames": 24}, {"image": (1, 0), "mask": (1, 1)}, size=(470, 860)),
        Node(3, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (2, 1)}),
        save(4, 3, "drag_region"),
        Node(5, "PreviewMotion", {"opacity": 0.6}, {"image": (1, 0), "motion": (2, 1), "tracks": (2, 2)}),
        Node(6, "PreviewImage", {}, {"images": (5, 0)}, size=(320, 360)),
    ]


def arrows_with_brush() -> list[Node]:
    """Arrows and a painted brush in one document; ping-pong looping."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(BRUSHED_ARROWS), "mode": "arrows",
                                           "num_frames": 32, "edge_aware": True}, {"image": (1, 0)},
             size=(470, 860)),
        Node(3, "EulerianMotion", {"num_frames": 32, "fps": 24.0, "loop": "ping-pong"}, {"flow": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "arrows_with_brush"),
    ]


def spectral_sway() -> list[Node]:
    """Natural sway from nothing but a mask: GID's spectral representation with a procedural prior."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SpectralVolumeSampler", {"source": "procedural", "num_frequencies": 16, "period_frames": 48,
                                          "fps": 24.0, "strength": 5.0, "wind_direction": 20.0, "seed": 7},
             {"image": (1, 0), "mask": (1, 1)}, size=(360, 520)),
        Node(3, "SpectrumToMotion", {"num_frames": 48}, {"spectrum": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "spectral_sway"),
        Node(6, "PreviewSpectrum", {"max_frequencies": 4}, {"spectrum": (2, 0)}),
        Node(7, "PreviewImage", {}, {"images": (6, 1)}, size=(320, 240)),
    ]


REFERENCE_VIDEO = "carphone_pristine.mp4"


def motion_transfer_video() -> list[Node]:
    """The motion of a reference video, measured with OpenCV DIS flow, transferred onto the picture."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "LoadVideo", {"file": REFERENCE_VIDEO}, size=(320, 360)),
        Node(3, "GetVideoComponents", {}, {"video": (2, 0)}),
        Node(4, "MotionFromVideo", {"max_frames": 32, "fps": 30.0}, {"frames": (3, 0)}),
        Node(5, "SpectralVolumeSampler", {"source": "reference motion", "num_frequencies": 16,
                                          "period_frames": 32, "fps": 30.0, "strength": 1.0},
             {"image": (1, 0), "mask": (1, 1), "reference_motion": (4, 0)}, size=(360, 520)),
        Node(6, "SpectrumToMotion", {"num_frames": 32}, {"spectrum": (5, 0)}),
        Node(7, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (6, 0)}),
        save(8, 7, "motion_transfer_video", fps=30.0),
    ]


def drag_and_release() -> list[Node]:
    """Pull the flag and let go: GID's image-space modal dynamics on a procedural spectrum."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SpectralVolumeSampler", {"source": "procedural", "num_frequencies": 16, "period_frames": 60,
                                          "fps": 30.0, "strength": 4.0, "seed": 3},
             {"image": (1, 0), "mask": (1, 1)}, size=(360, 520)),
        Node(3, "InteractiveDynamics", {"x": 50.0, "y": 200.0, "dx": 14.0, "dy": 4.0, "damping": 0.08,
                                        "hold_frames": 8, "num_frames": 45, "fps": 30.0}, {"spectrum": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        save(5, 4, "drag_and_release", fps=30.0),
    ]


WORKFLOWS = {"cinemagraph": cinemagraph, "drag_region": drag_region, "arrows_with_brush": arrows_with_brush,
             "spectral_sway": spectral_sway, "motion_transfer_video": motion_transfer_video,
             "drag_and_release": drag_and_release}

"""SparseTrajectoryToFlow: arrows, trajectories and a brush become motion the rest of the pack can use."""
from __future__ import annotations

import logging
import warnings

from comfy_api.latest import io, ui

from ..common import (
    CATEGORY,
    CoreTracks,
    DynFlow,
    DynMotion,
    NodeInputError,
    Progress,
    checked_inputs,
    image_to_bchw,
    mask_to_b1hw,
    require_memory,
)

logger = logging.getLogger(__name__)

NODE = "SparseTrajectoryToFlow"
MODES = ["arrows", "tracks"]
BRUSH_MODES = ["mask moves", "mask stays still"]
COORDINATES = {"auto": "auto", "pixels": False, "normalized": True}


class SparseTrajectoryToFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Sparse Trajectory To Flow",
            category=f"{CATEGORY}/control",
            description=(
                "Arrows with speeds, or drawn trajectories, become dense motion: a velocity field (DYN_FLOW) by the "
                "long-animation paper's Gaussian interpolation, and reference-anchored motion (DYN_MOTION) for N "
                "frames. A mask (motion brush) limits what moves; static pixels get exactly zero motion."),
            inputs=[
                io.Image.Input("image", tooltip="The picture the motion is drawn on: sets the size, and guides the "
                               "edge-aware option."),
                io.String.Input("trajectories", multiline=True, default='{"arrows": [], "tracks": []}',
                                tooltip="What to move, in the picture's pixels (or normalised 0..1). Accepted: the "
                                'pack\'s JSON {"arrows": [{"start": [x,y], "end": [x,y], "speed": 1}], "tracks": '
                                '[[[x,y],...] or {"points": [[x,y],...], "start": 0, "end": 47, "easing": '
                                '"ease-in-out"}], "brush": {"strokes": [...]}}, arrow pairs [[[x0,y0],[x1,y1]], ...], '
                                "Motion-I2V lines 'x1,y1,x2,y2' (one a line), KJNodes spline coordinates "
                                '[{"x":..,"y":..}], DragNUWA / MotionCtrl point lists [[[x,y],...], ...], or the '
                                'core TRACKS {"track_path": ...}.'),
                io.Combo.Input("mode", options=MODES, default="arrows",
                               tooltip="arrows: each arrow is a velocity (its length x speed, in pixels per frame) "
                               "spread by Gaussian interpolation. tracks: each trajectory drags the region under its "
                               "start point along its path, over the whole clip or between the track's own start "
                               "and end frames with its easing."),
                io.Int.Input("num_frames", default=48, min=2, max=1024,
                             tooltip="Frames of the DYN_MOTION output (tracks are resampled to this length; a "
                             "track's start and end frames count in it)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=100.0, step=0.05,
                               tooltip="Global motion strength: multiplies every arrow's speed (arrows) or every "
                               "track's displacement (tracks)."),
                io.Float.Input("sigma", default=0.0, min=0.0, max=4096.0, step=1.0,
                               tooltip="Gaussian spread in pixels; 0 = automatic: for arrows 170 at 512 px, "
                               "proportional to the picture's long side (the long-animation paper); for tracks the "
                               "long side / 8."),
                io.Float.Input("threshold", default=0.05, min=0.0, max=100.0, step=0.01,
                               tooltip="R of Eq. 7: velocities with magnitude at or below this (pixels per frame) "
                               "become zero."),
                io.Boolean.Input("edge_aware", default=False,
                                 tooltip="Arrows: keep each arrow's motion on its own side of the picture's edges. "
                                 "Each arrow's Gaussian weight is multiplied by its geodesic affinity exp(-cost), "
                                 "the cheapest path cost from the arrow's start across colour steps of the picture "
                                 "(at 128 px, on the picture smoothed by a self-guided filter; then snapped to the "
                                 "full-size edges by a guided filter). Takes about 10-30 ms per arrow."),
                io.Combo.Input("coordinates", options=list(COORDINATES), default="auto",
                               tooltip="Units of the points: pixels, normalised 0..1, or auto-detect."),
                io.Combo.Input("out_of_bounds", options=["clip", "error"], default="clip",
                               tooltip="Points outside the picture: clip them to the border with a warning, or fail."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Motion brush: the region that may move (or, with brush_mode 'mask stays "
                              "still', the region that must not). Must match the picture's size."),
                io.Combo.Input("brush_mode", options=BRUSH_MODES, default="mask moves", optional=True,
                               tooltip="How the mask is read."),
            ],
            outputs=[
                DynFlow.Output("flow", display_name="flow",
                               tooltip="Velocity field in pixels per frame, with the brush as its mask."),
                DynMotion.Output("motion", display_name="motion",
                                 tooltip="Reference-anchored motion for num_frames frames."),
                CoreTracks.Output("tracks", display_name="tracks",
                                  tooltip="The trajectories as core TRACKS: tracks resampled to num_frames (timing "
                                  "applied); arrows as 2-point tracks from the start to where one frame moves it."),
            ],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image, trajectories, mode, num_frames, strength, sigma, threshold, edge_aware, coordinates,
                out_of_bounds, mask=None, brush_mode="mask moves") -> io.NodeOutput:
        from ...ops.trajectories import tracks_to_comfy

        drawn = draw(image, trajectories, mode, num_frames, strength, sigma, threshold, edge_aware, coordinates,
                     out_of_bounds, mask, brush_mode, progress=Progress(1))
        # The picture is sent back as a preview so the canvas editor can show whatever feeds this node.
        return io.NodeOutput(drawn.flow, drawn.motion, tracks_to_comfy(drawn.tracks),
                             ui=ui.PreviewImage(image[:1], cls=cls))


def draw(image, trajectories, mode, num_frames, strength, sigma, threshold, edge_aware, coordinates, out_of_bounds,
         mask=None, brush_mode="mask moves", progress=None):
    """The node's inputs -> ``ops.drawn_motion.DrawnMotion``, every bad input named after this node and its input."""
    from ...ops.drawn_motion import motion_from_drawing
    from ...ops.trajectories import TrajectoryFormatError

    picture = image_to_bchw(image, NODE)[:1]
    height, width = picture.shape[-2:]
    # the motion and one working copy (tracks are spread in chunks, then scaled by the strength)
    require_memory(NODE, 16 * num_frames * height * width, ("num_frames", "image"),
                   f"the motion of {num_frames} frames at {width}x{height}")
    region = movable_region(mask, brush_mode, (height, width))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            drawn = motion_from_drawing(
                trajectories, picture[0], mode=mode, num_frames=num_frames, strength=strength, sigma=sigma or None,
                threshold=threshold, edge_aware=edge_aware, normalized=COORDINATES[coordinates],
                out_of_bounds=out_of_bounds, mask=region, input_name="trajectories", progress=progress)
    except TrajectoryFormatError as error:
        raise NodeInputError(NODE, "trajectories", "trajectories in a supported format", str(error)) from error
    for warning in caught:
        logger.warning("%s: %s", NODE, warning.message)
    return drawn


def movable_region(mask, brush_mode: str, size: tuple[int, int]):
    """The MASK input as the [H, W] region that may move (None: everything may), read as ``brush_mode`` says."""
    if brush_mode == "mask moves":
        region = mask_to_b1hw(mask, size, NODE)
        return None if region is None else region[0, 0]
    region = mask_to_b1hw(mask, size, NODE, allow_empty=True)
    if region is None:
        return None
    region = 1.0 - region[0, 0]
    if float(region.max()) <= 0:
        raise NodeInputError(NODE, "mask", "a mask that leaves at least one pixel free to move (brush_mode 'mask "
                             "stays still')", "a mask that covers the whole picture")
    return region

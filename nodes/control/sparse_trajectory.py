"""SparseTrajectoryToFlow: arrows, trajectories and a brush become motion the rest of the pack can use."""
from __future__ import annotations

import warnings

import torch
from comfy_api.latest import io, ui

from ...ops.containers import Motion, VelocityField
from ..common import CATEGORY, DynFlow, DynMotion, NodeInputError, Tracks, image_to_bchw, mask_to_b1hw

NODE = "SparseTrajectoryToFlow"
MODES = ["arrows", "tracks"]
BRUSH_MODES = ["mask moves", "mask stays still"]


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
                                tooltip="What to move, as JSON in the picture's pixels. Accepted: the pack's "
                                '{"arrows": [{"start": [x,y], "end": [x,y], "speed": 1}], "tracks": [[[x,y],...]]}, '
                                "arrow pairs [[[x0,y0],[x1,y1]], ...], Motion-I2V lines 'x1,y1,x2,y2', "
                                'KJNodes spline coordinates [{"x":..,"y":..}], DragNUWA point lists, or core TRACKS.'),
                io.Combo.Input("mode", options=MODES, default="arrows",
                               tooltip="arrows: each arrow is a velocity (pixels per frame at speed 1) spread by "
                               "Gaussian interpolation. tracks: each trajectory drags the region under its start "
                               "point along its path over the frames."),
                io.Int.Input("num_frames", default=48, min=2, max=1024,
                             tooltip="Frames of the DYN_MOTION output (tracks are resampled to this length)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=100.0, step=0.05,
                               tooltip="Global motion strength: multiplies every arrow's speed."),
                io.Float.Input("sigma", default=0.0, min=0.0, max=4096.0, step=1.0,
                               tooltip="Gaussian spread in pixels; 0 = automatic (170 at 512 px, proportional to "
                               "the picture's long side, as in the long-animation paper)."),
                io.Float.Input("threshold", default=0.05, min=0.0, max=100.0, step=0.01,
                               tooltip="R of Eq. 7: velocities with magnitude at or below this (pixels per frame) "
                               "become zero."),
                io.Boolean.Input("edge_aware", default=False,
                                 tooltip="Keep motion from bleeding across the picture's edges (joint bilateral "
                                 "filtering guided by the picture)."),
                io.Combo.Input("coordinates", options=["auto", "pixels", "normalized"], default="auto",
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
                DynFlow.Output("flow", tooltip="Velocity field in pixels per frame, with the brush as its mask."),
                DynMotion.Output("motion", tooltip="Reference-anchored motion for num_frames frames."),
                Tracks.Output("tracks", tooltip="The parsed trajectories as core TRACKS (arrows are 2-point tracks)."),
            ],
        )

    @classmethod
    def execute(cls, image, trajectories, mode, num_frames, strength, sigma, threshold, edge_aware, coordinates,
                out_of_bounds, mask=None, brush_mode="mask moves") -> io.NodeOutput:
        from ...ops import sparse_to_dense as s2d
        from ...ops import trajectories as tr

        picture = image_to_bchw(image, NODE)[:1]
        height, width = picture.shape[-2:]
        brush = mask_to_b1hw(mask, (height, width), NODE)
        normalized = {"auto": "auto", "pixels": False, "normalized": True}[coordinates]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trajectories = tr.read_document(trajectories, "trajectories")  # parsed once, read three ways
                painted = tr.parse_brush(trajectories, width, height, normalized=normalized,
                                         out_of_bounds=out_of_bounds, input_name="trajectories")
                if mode == "arrows":
                    arrows = tr.parse_arrows(trajectories, width, height, normalized=normalized,
                                             out_of_bounds=out_of_bounds, input_name="trajectories")
                else:
                    tracks = tr.parse_trajectories(trajectories, width, height, normalized=normalized,
                                                   out_of_bounds=out_of_bounds, input_name="trajectories")
                    arrows = None
        except tr.TrajectoryFormatError as error:
            raise NodeInputError(NODE, "trajectories", "trajectories in a supported format", str(error)) from error
        for warning in caught:
            print(f"[ImageDynamics] {NODE}: {warning.message}")
        if painted is not None and painted.strokes:
            drawn = painted.to_mask(height, width)
            if painted.invert:
                drawn = 1.0 - drawn
            # a drawn brush adds to a connected mask (union)
            brush = drawn[None, None] if brush is None else torch.maximum(brush, drawn[None, None])
            if float(brush.max()) <= 0:
                raise NodeInputError(NODE, "trajectories", "a brush that covers at least one pixel", "an empty brush")

        brush_hw = None if brush is None else brush[0, 0]
        if mode == "arrows":
            if arrows.start.shape[0] == 0:
                raise NodeInputError(NODE, "trajectories", "at least one arrow", "none")
            if edge_aware:  # each arrow's motion stays on its own side of the picture's edges
                velocity = s2d.edge_aware_arrow_field(arrows, picture[0], sigma=sigma or None, threshold=threshold,
                                                      strength=strength)
            else:
                velocity = s2d.gaussian_arrow_field(arrows, height, width, sigma=sigma or None, threshold=threshold,
                                                    strength=strength)
            if brush_hw is not None:
                velocity = s2d.apply_brush(velocity, brush_hw)
            flow = VelocityField(velocity=velocity[None], mask=brush)
            steps = torch.arange(num_frames, dtype=torch.float32).view(-1, 1, 1, 1)
            displacement = velocity[None] * steps  # straight-line motion; loops come from EulerianMotion
            tracks = _arrow_tracks(arrows, strength)
        else:
            resampled = tr.resample_tracks(tracks, num_frames)
            displacement = s2d.tracks_to_dense_motion(resampled, height, width, num_frames,
                                                      sigma=sigma or None, brush=brush_hw)
            displacement = displacement * strength
            velocity = displacement[1:2] - displacement[0:1]
            flow = VelocityField(velocity=velocity, mask=brush)
            tracks = resampled
        result = Motion(displacement=displacement, fps=30.0)
        # The picture is sent back as a preview so the canvas editor can show whatever feeds this node.
        return io.NodeOutput(flow, result, tr.tracks_to_comfy(tracks), ui=ui.PreviewImage(image[:1], cls=cls))


def _arrow_tracks(arrows, strength: float):
    from ...ops.trajectories import Tracks

    start = arrows.start.float()
    end = start + (arrows.end.float() - start) * arrows.speed.float().view(-1, 1) * strength
    points = torch.stack([start, end])
    return Tracks(points=points, visibility=torch.ones(points.shape[:2], dtype=torch.bool))

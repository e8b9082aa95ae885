"""TracksToSparseFlow: drawn trajectories become the sparse-flow control of a trajectory ControlNet.

The control travels as ``DYN_CONTROL``, a :class:`SparseFlowControl`: per-frame sparse, reference-anchored
flows and their mask, rasterised as Motion-I2V's ControlNet expects them (a square patch around each track's
start holds that track's displacement from frame 0), plus the tracks themselves so that a consumer running at
another frame count or size can rasterise them again. Two rasterisations: ``demo``, the authors' demo
(:func:`models.motion_i2v.sparse_control.demo_sparse_flow`: 128 x 128 px patches at 512 x 320, later tracks
overwrite earlier ones; the default), and ``nearest track`` (:func:`ops.sparse_to_dense.tracks_to_sparse_flow`:
small patches, the nearest start wins). It is a type of its own, not a ``DYN_MOTION``: sparse
flows move only the patches under the tracks' starts, so a renderer given them would tear the picture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ...models.motion_i2v.sparse_control import RASTERISATIONS
from ...ops.containers import Motion
from ..common import CATEGORY, CoreTracks, DynMotion, NodeInputError, checked_inputs, image_to_bchw, require_memory

NODE = "TracksToSparseFlow"

DynControl = io.Custom("DYN_CONTROL")
"""Sparse trajectory control (:class:`SparseFlowControl`)."""


@dataclass
class SparseFlowControl:
    """What travels as ``DYN_CONTROL``.

    Attributes:
        flows: ``[T, 2, H, W]`` float32 pixels: ``p_n(t) - p_n(0)`` on the patch of track n, 0 elsewhere;
            frame 0 is zero (reference-anchored, channel 0 = x right, 1 = y down).
        mask: ``[T, 1, H, W]`` in {0, 1}: 1 where ``flows`` is given (a hidden point gives 0 for that frame).
        tracks: the trajectories (:class:`ops.trajectories.Tracks`, pixels at ``H x W``).
        radius: patch half-size in pixels used for ``flows`` (``None`` = automatic for the rasterisation).
        parameter: PCHIP time parameterisation of the resampling ("index" or "arclength").
        rasterisation: ``"demo"`` or ``"nearest track"`` (:data:`RASTERISATIONS`).
    """

    flows: torch.Tensor
    mask: torch.Tensor
    tracks: object
    radius: int | None = None
    parameter: str = "index"
    rasterisation: str = "demo"

    @property
    def num_frames(self) -> int:
        return int(self.flows.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.flows.shape[-2]), int(self.flows.shape[-1])

    def rasterise(self, height: int, width: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flows [N, 2, H, W], mask [N, 1, H, W])`` at another size or frame count (tracks rescaled per axis).

        The stored tensors are returned as they are when nothing changes.
        """
        from ...ops.trajectories import Tracks

        if (height, width) == self.size and num_frames == self.num_frames:
            return self.flows, self.mask
        h0, w0 = self.size
        scale = torch.tensor([width / w0, height / h0], dtype=torch.float32)
        tracks = Tracks(self.tracks.points * scale.to(self.tracks.points.device), self.tracks.visibility)
        radius = self.radius
        if radius is not None and (height, width) != self.size:
            smallest = 1 if self.rasterisation == "demo" else 0          # a demo patch is at least 2 x 2 px
            radius = max(smallest, round(radius * max(height / h0, width / w0)))
        return rasterise_tracks(tracks, height, width, num_frames, radius, self.parameter, self.rasterisation)


def rasterise_tracks(tracks, height: int, width: int, num_frames: int, radius: int | None = None,
                     parameter: str = "index", rasterisation: str = "demo") -> tuple[torch.Tensor, torch.Tensor]:
    """``(flows [T, 2, H, W], mask [T, 1, H, W])`` of :class:`ops.trajectories.Tracks` by either rasterisation."""
    from ...models.motion_i2v.sparse_control import demo_sparse_flow
    from ...ops.sparse_to_dense import tracks_to_sparse_flow

    if rasterisation == "demo":
        return demo_sparse_flow(tracks, height, width, num_frames, radius, parameter=parameter)
    if rasterisation == "nearest track":
        return tracks_to_sparse_flow(tracks, height, width, num_frames, radius, parameter=parameter)
    raise ValueError(f"rasterisation must be one of {RASTERISATIONS}, got {rasterisation!r}")


def control_from_tracks(tracks, height: int, width: int, num_frames: int, radius: int | None = None,
                        parameter: str = "index", rasterisation: str = "demo") -> SparseFlowControl:
    """Rasterise :class:`ops.trajectories.Tracks` into a :class:`SparseFlowControl`."""
    flows, mask = rasterise_tracks(tracks, height, width, num_frames, radius, parameter, rasterisation)
    return SparseFlowControl(flows=flows.float(), mask=mask.float(), tracks=tracks, radius=radius,
                             parameter=parameter, rasterisation=rasterisation)


def parse_tracks(data, node: str, input_name: str = "tracks"):
    """Core ``TRACKS`` -> :class:`ops.trajectories.Tracks`, with the node's error on bad input."""
    from ...ops.trajectories import TrajectoryFormatError, tracks_from_comfy

    try:
        return tracks_from_comfy(data, input_name=input_name)
    except TrajectoryFormatError as error:
        raise NodeInputError(node, input_name, "core TRACKS (e.g. from SparseTrajectoryToFlow)", str(error)) from error


class TracksToSparseFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Tracks To Sparse Flow",
            category=f"{CATEGORY}/control",
            description=(
                "Trajectories become the sparse flow a trajectory ControlNet takes (Motion-I2V): the tracks are "
                "resampled to N frames (PCHIP), and for frame t a square patch around each track's start gets the "
                "track's displacement from frame 0, with mask 1 there and 0 elsewhere. By default the patches are "
                "the authors' demo's (128 x 128 px at 512 x 320)."),
            inputs=[
                CoreTracks.Input("tracks", tooltip="Trajectories in the picture's pixels (core TRACKS, e.g. the "
                                 "'tracks' output of SparseTrajectoryToFlow)."),
                io.Image.Input("image", tooltip="The picture the tracks are drawn on (sets the size)."),
                io.Int.Input("num_frames", default=16, min=2, max=1024,
                             tooltip="Frames of the control, the reference frame included (Motion-I2V: 16)."),
                io.Int.Input("radius", default=0, min=0, max=512,
                             tooltip="Patch half-size in pixels around each track's start (the demo's 'Flow Unit'); "
                             "0 = automatic: 'demo' 64 px at a long side of 512 (the demo's 128 x 128 px patches), "
                             "scaled with the picture; 'nearest track' max(2, long side / 128): 4 at 512 px."),
                io.Combo.Input("timing", options=["index", "arclength"], default="index",
                               tooltip="How the drawn points are spread over the frames: 'index' = each drawn point "
                               "takes the same time (the demo); 'arclength' = constant speed along the path."),
                io.Combo.Input("rasterisation", options=list(RASTERISATIONS), default="demo", optional=True,
                               tooltip="'demo': as the authors' demo: patch rows [int(y) - r, int(y) + r) and columns "
                               "[int(x) - r, int(x + r)) around each start, a later track overwrites an earlier "
                               "one, a single-point track drifts 1 px down-right. 'nearest track': the pack's "
                               "small patches, the track whose start is nearest wins."),
            ],
            outputs=[
                DynControl.Output("control", display_name="control",
                                  tooltip="Sparse flows [N,2,H,W] (pixels, frame 0 zero) and their mask "
                                  "[N,1,H,W], for MotionI2VPredictFlow's ControlNet."),
                DynMotion.Output("sparse_motion", display_name="sparse motion",
                                 tooltip="The same sparse flows as DYN_MOTION (mask as its "
                                 "intention), for PreviewMotion. Not meant for renderers: only the patches move."),
            ],
        )

    @classmethod
    @checked_inputs
    def execute(cls, tracks, image, num_frames, radius, timing, rasterisation="demo") -> io.NodeOutput:
        height, width = image_to_bchw(image[:1], NODE).shape[-2:]
        # the flows and the mask, and the preview's copies of both
        require_memory(NODE, 24 * num_frames * height * width, ("num_frames", "image"),
                       f"sparse flows of {num_frames} frames at {width}x{height}")
        parsed = parse_tracks(tracks, NODE)
        control = control_from_tracks(parsed, height, width, num_frames, radius or None, timing, rasterisation)
        preview = Motion(displacement=control.flows.clone(), fps=8.0, intention=control.mask.clone())
        return io.NodeOutput(control, preview)

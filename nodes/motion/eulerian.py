"""EulerianMotion: a velocity field integrated into reference-anchored motion for N frames, looping if asked."""
from __future__ import annotations

from comfy_api.latest import io

from ...ops.containers import LoopBlend, Motion, VelocityField
from ..common import (
    CATEGORY,
    DynFlow,
    DynMotion,
    NodeInputError,
    Progress,
    check_finite,
    checked_inputs,
    require_memory,
)

NODE = "EulerianMotion"
SEAMLESS = "seamless loop"
ONE_CROSSFADE = "seamless loop (one cross-fade)"
LOOP_MODES = [SEAMLESS, ONE_CROSSFADE, "ping-pong", "no loop"]


class EulerianMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Eulerian Motion (loop)",
            category=f"{CATEGORY}/motion",
            description=(
                "Integrates a static velocity field (pixels per frame) into the displacement of every pixel for N "
                "frames. 'seamless loop' integrates forward from the start and backward from the end and "
                "cross-fades the two renders, as in Holynski et al., 'Animating Pictures with Eulerian Motion "
                "Fields' (CVPR 2021), so the last frame flows into the first; each region cross-fades at its own "
                "time, so no frame shows the whole moving region double-exposed."),
            inputs=[
                DynFlow.Input("flow", tooltip="Velocity field from SparseTrajectoryToFlow (pixels per frame)."),
                io.Int.Input("num_frames", default=48, min=2, max=4096, tooltip="Frames in the loop."),
                io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=1.0,
                               tooltip="Frames per second the motion is meant to play at."),
                io.Float.Input("speed", default=1.0, min=0.0, max=20.0, step=0.05,
                               tooltip="Multiplies the velocity: 2 = twice as far per frame."),
                io.Combo.Input("loop", options=LOOP_MODES, default="seamless loop",
                               tooltip="seamless loop: two-way integration, each region cross-fading at its own "
                               "time over a fifth of the loop (flowing water, smoke, clouds, drifting texture); "
                               "seamless loop (one cross-fade): the whole region cross-fades over the whole loop, "
                               "Holynski et al.'s blend (ghosts half-way on textured content); ping-pong: forward "
                               "then back, sharp in every frame but the motion reverses (swaying, breathing); no "
                               "loop: forward only, a clip that jumps back at the end."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="Reference-anchored motion; frame 0 is exactly still.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, flow: VelocityField, num_frames, fps, speed, loop) -> io.NodeOutput:
        from ...ops import eulerian

        if not isinstance(flow, VelocityField):
            raise NodeInputError(NODE, "flow", "a DYN_FLOW velocity field", type(flow).__name__)
        check_finite(flow.velocity, NODE, "flow")
        velocity = flow.velocity[0].float() * float(speed)
        height, width = flow.size
        # the loop's forward and backward displacements, and the backward one's reversed copy: 24 bytes per pixel
        # and frame (8 without a seamless loop, plus the integration's working copy)
        per_frame = (24 if loop in (SEAMLESS, ONE_CROSSFADE) else 16) * height * width
        require_memory(NODE, per_frame * num_frames, ("num_frames", "flow"),
                       f"the motion of {num_frames} frames at {width}x{height}")
        progress = Progress(num_frames)
        if loop in (SEAMLESS, ONE_CROSSFADE):
            forward, backward, alpha = eulerian.loop_motion_pair(velocity, num_frames, progress=progress)
            blend = LoopBlend(backward, alpha)
            if loop == SEAMLESS:  # each region cross-fades at its own time (phases spread over the moving pixels)
                moving = velocity.abs().amax(dim=0) > 0
                if flow.mask is not None:
                    moving &= flow.mask[0, 0].to(moving.device) > 0
                blend = LoopBlend(backward, alpha, eulerian.loop_phase(height, width, moving),
                                  eulerian.PHASE_WINDOW)
            motion = Motion(displacement=forward, fps=fps, loops=True, blend=blend)
        else:
            mode = "pingpong" if loop == "ping-pong" else "none"
            motion = Motion(displacement=eulerian.loop_motion(velocity, num_frames, mode=mode, progress=progress),
                            fps=fps,
                            loops=mode == "pingpong")
        if flow.mask is not None:  # the brush is exact: pixels outside it never move
            still = flow.mask[0, 0] <= 0
            motion.displacement[:, :, still] = 0
            if motion.blend is not None:
                motion.blend.displacement[:, :, still] = 0
        return io.NodeOutput(motion)

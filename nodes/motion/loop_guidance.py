"""LoopGuidance: motion self-guidance towards a seamless loop, for the pack's diffusion samplers."""
from __future__ import annotations

from comfy_api.latest import io

from ..common import CATEGORY, DynGuidance, NodeInputError, checked_inputs

NODE = "LoopGuidance"

LOSSES = {"default": None, "relative": True, "plain": False}
"""The ``loss`` input's options -> ``LoopGuidance.relative`` (None = the model family's measured default)."""


class LoopGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Loop Guidance",
            category=f"{CATEGORY}/motion",
            description=(
                "Motion self-guidance (GID Eqs. 5-6): at every denoising step the sampler decodes its estimate, "
                "measures how far the motion after the loop's last frame is from its first two frames (position "
                "and velocity, L1), and steers the noise prediction down that gradient with weight u * sigma, "
                "re-noising and repeating the step (self-recurrence). The loop has no duplicated end frame and no "
                "hold at the seam. Connect it to SpectralVolumeSampler (source 'model') or PredictLatentMotion. "
                "A GID loop over the model's own period loops exactly without guidance (nothing to guide). The loss "
                "can be made relative to the motion's amplitude, so that closing the seam does not shrink it."),
            inputs=[
                io.Float.Input("weight", default=0.0, min=0.0, max=100000.0, step=1.0,
                               tooltip="u, the guidance weight; 0 = the model family's measured default. u is "
                               "given at the paper's resolution (GID 256x160, LVMM a 512x512 frame) and scaled to "
                               "the model's, so one value means the same at every resolution."),
                io.Int.Input("recurrences", default=2, min=1, max=10,
                             tooltip="Passes per step with re-noising in between (GID: 2; 1 = none)."),
                io.Float.Input("cfg", default=1.75, min=0.0, max=30.0, step=0.05,
                               tooltip="Classifier-free guidance w used while looping (GID: 1.75); replaces the "
                               "sampler's."),
                io.Int.Input("num_frames", default=0, min=0, max=4096,
                             tooltip="Frames of the loop (they play 0 .. n-1, then 0 again); 0 = GID: the model's "
                             "period, LVMM: its trained length K - 1 (K + 1 frames are sampled, the two after the "
                             "loop are dropped)."),
                io.Boolean.Input("through_denoiser", default=True,
                                 tooltip="Differentiate through the denoiser (universal guidance); off treats its "
                                 "prediction as constant (cheaper, weaker)."),
                io.Combo.Input("loss", options=list(LOSSES), default="default",
                               tooltip="plain: the paper's seam mismatch (GID Eq. 6), which is smallest for no "
                               "motion and can shrink a draw that cannot loop to stillness; relative: the "
                               "mismatch over the motion's own amplitude, so shrinking does not help and the "
                               "sampler keeps the motion while closing the seam; default: the family's measured "
                               "choice (GID relative, LVMM plain)."),
            ],
            outputs=[DynGuidance.Output("guidance", display_name="guidance",
                                        tooltip="The guidance settings for a sampler.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, weight, recurrences, cfg, num_frames, through_denoiser, loss="default") -> io.NodeOutput:
        from ...models.guidance import LoopGuidance as Guidance

        if num_frames and num_frames < 3:
            raise NodeInputError(NODE, "num_frames", "0 (the model's period) or at least 3", str(num_frames))
        return io.NodeOutput(Guidance(weight=weight or None, recurrences=recurrences, cfg_w=cfg,
                                      num_frames=num_frames or None, through_denoiser=through_denoiser,
                                      relative=LOSSES[loss]))

"""Spectral motion (GID's representation): sample, convert, measure from video, and drag-and-release dynamics."""
from __future__ import annotations

import math

import torch
from comfy_api.latest import io

from ...ops.containers import Motion, SpectralVolume, VelocityField
from ..common import (
    CATEGORY,
    DynFlow,
    DynGuidance,
    DynModel,
    DynMotion,
    DynSpectrum,
    NodeInputError,
    Progress,
    check_finite,
    checked_inputs,
    image_to_bchw,
    library_error,
    mask_to_b1hw,
    require_memory,
)

NODE_SAMPLER = "SpectralVolumeSampler"
NODE_TO_MOTION = "SpectrumToMotion"
NODE_FROM_VIDEO = "MotionFromVideo"
NODE_DYNAMICS = "InteractiveDynamics"
NODE_PREVIEW = "PreviewSpectrum"
SOURCES = ["procedural", "reference motion", "model"]


class SpectralVolumeSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_SAMPLER,
            display_name="Spectral Volume Sampler",
            category=f"{CATEGORY}/motion",
            description=(
                "Makes a spectral volume (GID: K temporal frequencies per pixel, a whole loop of oscillating motion) "
                "for a picture: 'procedural' draws natural sway from a mask and a wind direction with no weights; "
                "'reference motion' takes the spectrum of motion measured from a video (MotionFromVideo) and "
                "puts it on this picture; 'model' samples a trained GID motion prior (LoadMotionModel)."),
            inputs=[
                io.Image.Input("image", tooltip="The picture to animate (sets the size; conditions the model)."),
                io.Combo.Input("source", options=SOURCES, default="procedural",
                               tooltip="Where the motion comes from (see the node's description)."),
                io.Int.Input("num_frequencies", default=16, min=1, max=128,
                             tooltip="K, the frequencies kept per pixel (GID uses 16)."),
                io.Int.Input("period_frames", default=150, min=2, max=4096,
                             tooltip="T, the loop's period in frames the spectrum describes (GID: 150 at 30 fps)."),
                io.Float.Input("fps", default=30.0, min=1.0, max=240.0, step=1.0,
                               tooltip="Frames per second of that period."),
                io.Float.Input("strength", default=4.0, min=0.0, max=200.0, step=0.1,
                               tooltip="procedural: about the largest displacement in pixels; reference / model: "
                               "a factor on the motion's amplitude."),
                io.Float.Input("wind_direction", default=0.0, min=-360.0, max=360.0, step=1.0,
                               tooltip="procedural: direction of the main sway in degrees (0 = right, 90 = down)."),
                io.Float.Input("falloff", default=0.5, min=0.01, max=10.0, step=0.05,
                               tooltip="procedural: power falls as exp(-f / falloff), f in Hz (larger = "
                               "more high-frequency flutter)."),
                io.Float.Input("coherence", default=0.0, min=0.0, max=2048.0, step=1.0,
                               tooltip="procedural: size in pixels of regions that move as one piece; 0 = automatic."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Random seed (procedural phases, model noise)."),
                io.Mask.Input("mask", optional=True, tooltip="Where motion is allowed (1 = moves); elsewhere the "
                              "spectrum is exactly zero."),
                DynFlow.Input("direction_field", optional=True,
                              tooltip="procedural: a velocity field (e.g. arrows) giving the sway direction per "
                              "pixel instead of one wind direction."),
                DynMotion.Input("reference_motion", optional=True,
                                tooltip="reference motion: motion measured from a video (MotionFromVideo)."),
                DynModel.Input("model", optional=True, tooltip="model: a GID motion prior from LoadMotionModel."),
                DynGuidance.Input("guidance", optional=True, tooltip="model: LoopGuidance for seamless loops."),
                io.Int.Input("steps", default=50, min=1, max=1000, optional=True,
                             tooltip="model: DDIM steps (GID: 250; 500 with loop guidance)."),
                io.Float.Input("cfg", default=1.75, min=0.0, max=30.0, step=0.05, optional=True,
                               tooltip="model: classifier-free guidance weight w (eps = (1+w) eps_c - w eps_u)."),
            ],
            outputs=[DynSpectrum.Output("spectrum", display_name="spectrum",
                                        tooltip="Complex [K,2,H,W] spectral volume at the picture's "
                                        "size, in pixels.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image, source, num_frequencies, period_frames, fps, strength, wind_direction, falloff,
                coherence, seed, mask=None, direction_field=None, reference_motion=None, model=None, guidance=None,
                steps=50, cfg=1.75) -> io.NodeOutput:
        from ...ops.optical_flow import transfer_motion
        from ...ops.procedural import procedural_spectrum
        from ...ops.spectral import to_spectral_volume

        node = NODE_SAMPLER
        picture = image_to_bchw(image, node)[:1]
        size = tuple(picture.shape[-2:])
        # K complex coefficients per pixel and axis (16 bytes), and the procedural prior's working copies
        require_memory(node, 48 * num_frequencies * size[0] * size[1], ("num_frequencies", "image"),
                       f"a spectral volume of {num_frequencies} frequencies at {size[1]}x{size[0]}")
        brush = mask_to_b1hw(mask, size, node)
        if num_frequencies > period_frames // 2 + 1:
            raise NodeInputError(node, "num_frequencies", f"at most period_frames // 2 + 1 = {period_frames // 2 + 1}",
                                 str(num_frequencies))
        if source == "procedural":
            direction = (math.cos(math.radians(wind_direction)), math.sin(math.radians(wind_direction)))
            if direction_field is not None:
                if not isinstance(direction_field, VelocityField) or direction_field.size != size:
                    raise NodeInputError(node, "direction_field", f"a DYN_FLOW of the picture's size {size[1]}x{size[0]}",
                                         _describe(direction_field))
                direction = direction_field.velocity[0].float()
                if brush is None and direction_field.mask is not None:
                    brush = direction_field.mask
            coeffs = procedural_spectrum(size[0], size[1], mask=None if brush is None else brush[0, 0],
                                         direction=direction, num_frequencies=num_frequencies,
                                         num_frames=period_frames, fps=fps, strength=strength, falloff=falloff,
                                         coherence_sigma=coherence or None, seed=seed, progress=Progress(100))
            spectrum = SpectralVolume(coeffs=coeffs, num_frames=period_frames, fps=fps)
        elif source == "reference motion":
            if not isinstance(reference_motion, Motion):
                raise NodeInputError(node, "reference_motion", "a DYN_MOTION (e.g. from MotionFromVideo) when "
                                     "source is 'reference motion'", _describe(reference_motion))
            check_finite(reference_motion.displacement, node, "reference_motion")
            keep = min(num_frequencies, reference_motion.num_frames // 2 + 1)
            measured = to_spectral_volume(reference_motion, keep)
            spectrum = transfer_motion(measured, size, mask=None if brush is None else brush[0, 0], scale=strength)
        else:
            if model is None:
                raise NodeInputError(node, "model", "a GID model from LoadMotionModel when source is 'model'",
                                     "nothing")
            from .gid_sampling import sample_gid_spectrum

            spectrum = sample_gid_spectrum(node, model, picture, guidance, steps, cfg, seed, strength,
                                           None if brush is None else brush[0, 0], Progress(steps))
        return io.NodeOutput(spectrum)


BAND_BYTES = 1 << 28  # working memory of ops.spectral.to_motion: a few copies of its band of 2^23 float32 values


class SpectrumToMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_TO_MOTION,
            display_name="Spectrum To Motion",
            category=f"{CATEGORY}/motion",
            description=("Turns a spectral volume into per-frame motion by the inverse temporal FFT. Magnify or "
                         "calm the motion, slow it down (Fourier evaluation at fractional times, or GID's linear "
                         "interpolation); a whole number of periods loops exactly."),
            inputs=[
                DynSpectrum.Input("spectrum", tooltip="A spectral volume."),
                io.Int.Input("num_frames", default=0, min=0, max=8192,
                             tooltip="Frames to make; 0 = one whole period (a seamless loop), or the loop length "
                             "of a loop-guided GID spectrum."),
                io.Float.Input("magnify", default=1.0, min=0.0, max=100.0, step=0.05,
                               tooltip="Scales every amplitude (motion magnification > 1)."),
                io.Float.Input("slow_motion", default=1.0, min=0.05, max=32.0, step=0.05,
                               tooltip="2 = half speed (twice the frames per period)."),
                io.Combo.Input("interpolation", options=["fourier", "linear"], default="fourier",
                               tooltip="How slow motion fills in between frames."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="Reference-anchored motion; frame 0 is the picture itself.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, spectrum, num_frames, magnify, slow_motion, interpolation) -> io.NodeOutput:
        from ...ops.spectral import scale_amplitude, to_motion

        if not isinstance(spectrum, SpectralVolume):
            raise NodeInputError(NODE_TO_MOTION, "spectrum", "a DYN_SPECTRUM", _describe(spectrum))
        loop_frames = int(spectrum.loop_frames or spectrum.num_frames)
        frames = num_frames or max(1, round(loop_frames * slow_motion))
        h, w = spectrum.size
        # the motion (made a band of rows at a time: its working memory is one band)
        require_memory(NODE_TO_MOTION, 8 * frames * h * w + BAND_BYTES, ("num_frames", "slow_motion"),
                       f"the motion of {frames} frames at {w}x{h}")
        scaled = SpectralVolume(coeffs=scale_amplitude(spectrum.coeffs, magnify), num_frames=spectrum.num_frames,
                                fps=spectrum.fps, norm=spectrum.norm, extras=spectrum.extras,
                                loop_frames=spectrum.loop_frames)
        motion = to_motion(scaled, num_frames=num_frames or None, slow_factor=slow_motion,
                           interpolation=interpolation, anchor_first_frame=True,
                           progress=Progress(spectrum.size[0]))
        return io.NodeOutput(motion)


class MotionFromVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_FROM_VIDEO,
            display_name="Motion From Video",
            category=f"{CATEGORY}/motion",
            description=("Measures the reference-anchored motion of a clip with OpenCV's DIS optical flow (no "
                         "weights): frame t = where each pixel of the first frame is at time t. Feed it to the "
                         "renderer, to SpectralVolumeSampler (motion transfer) or to Motion-I2V's stage 2."),
            inputs=[
                io.Image.Input("frames", tooltip="The clip's frames as an IMAGE batch (e.g. from Load Video)."),
                io.Int.Input("max_frames", default=64, min=2, max=4096, tooltip="Use at most this many frames."),
                io.Int.Input("stride", default=1, min=1, max=64, tooltip="Use every n-th frame."),
                io.Float.Input("fps", default=30.0, min=1.0, max=240.0, step=1.0,
                               tooltip="The clip's frame rate (divided by the stride)."),
                io.Combo.Input("preset", options=["ultrafast", "fast", "medium"], default="medium",
                               tooltip="DIS quality preset."),
                io.Boolean.Input("chained", default=False,
                                 tooltip="Compose frame-to-frame flows instead of measuring from the first frame "
                                 "each time (better for long clips that drift far)."),
                io.Image.Input("target", optional=True,
                               tooltip="Put the motion on this picture's size (vectors rescaled per axis)."),
                io.Mask.Input("mask", optional=True, tooltip="With a target: where the motion applies."),
                io.Float.Input("scale", default=1.0, min=0.0, max=100.0, step=0.05, optional=True,
                               tooltip="Multiplies the displacements."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="Reference-anchored motion of the clip.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, frames, max_frames, stride, fps, preset, chained, target=None, mask=None,
                scale=1.0) -> io.NodeOutput:
        from ...ops.optical_flow import reference_anchored_motion, transfer_motion

        clip = image_to_bchw(frames[::stride][:max_frames], NODE_FROM_VIDEO, "frames")  # only the frames used
        if clip.shape[0] < 2:
            raise NodeInputError(NODE_FROM_VIDEO, "frames", "at least 2 frames after the stride", f"{clip.shape[0]}")
        count, h, w = clip.shape[0], *clip.shape[-2:]
        th, tw = (h, w) if target is None else tuple(target.shape[1:3])
        require_memory(NODE_FROM_VIDEO, count * (8 * h * w + 16 * th * tw), ("max_frames", "frames", "target"),
                       f"the motion of {count} frames at {w}x{h}" + ("" if target is None else f" and {tw}x{th}"))
        progress = Progress(clip.shape[0])
        motion = reference_anchored_motion(clip, preset=preset, fps=fps / stride, chained=chained,
                                           progress=progress)
        if target is not None or scale != 1.0:
            size = motion.size if target is None else tuple(image_to_bchw(target, NODE_FROM_VIDEO, "target").shape[-2:])
            brush = mask_to_b1hw(mask, size, NODE_FROM_VIDEO)
            motion = transfer_motion(motion, size, mask=None if brush is None else brush[0, 0], scale=scale)
        return io.NodeOutput(motion)


class InteractiveDynamics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_DYNAMICS,
            display_name="Interactive Dynamics (drag and release)",
            category=f"{CATEGORY}/motion",
            description=("Pull a point of the picture and let go: the spectral volume is used as an image-space "
                         "modal basis (GID section 5.2, after Davis et al.) and each frequency is a damped "
                         "oscillator, advanced by a stable semi-implicit integrator, so the object rings down."),
            inputs=[
                DynSpectrum.Input("spectrum", tooltip="The modal basis: a spectral volume of the picture."),
                io.Float.Input("x", default=0.0, min=0.0, max=16384.0, step=1.0, tooltip="Drag point x in pixels."),
                io.Float.Input("y", default=0.0, min=0.0, max=16384.0, step=1.0, tooltip="Drag point y in pixels."),
                io.Float.Input("dx", default=10.0, min=-4096.0, max=4096.0, step=0.5,
                               tooltip="Drag displacement x in pixels."),
                io.Float.Input("dy", default=0.0, min=-4096.0, max=4096.0, step=0.5,
                               tooltip="Drag displacement y in pixels."),
                io.Float.Input("damping", default=0.05, min=0.0, max=10.0, step=0.01,
                               tooltip="Damping ratio xi of every mode (0 = rings forever)."),
                io.Float.Input("mass", default=1.0, min=0.01, max=100.0, step=0.01,
                               tooltip="Mass scale: heavier objects move less under the same pull."),
                io.Int.Input("hold_frames", default=10, min=0, max=4096,
                             tooltip="Frames the drag is held before release."),
                io.Int.Input("num_frames", default=90, min=2, max=8192, tooltip="Frames to simulate."),
                io.Float.Input("fps", default=30.0, min=1.0, max=240.0, step=1.0, tooltip="Frames per second."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="The object's response: pulled, released, ringing down.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, spectrum, x, y, dx, dy, damping, mass, hold_frames, num_frames, fps) -> io.NodeOutput:
        from ...ops.modal import simulate_modal_response

        if not isinstance(spectrum, SpectralVolume):
            raise NodeInputError(NODE_DYNAMICS, "spectrum", "a DYN_SPECTRUM", _describe(spectrum))
        h, w = spectrum.size
        for name, value, side in (("x", x, w), ("y", y, h)):
            if not 0 <= value <= side - 1:
                raise NodeInputError(NODE_DYNAMICS, name, f"a drag point inside the {w}x{h} picture (0 .. {side - 1})",
                                     f"({x}, {y})")
        # the response [T, 2, H, W] float32, summed over the modes a chunk of frames at a time
        require_memory(NODE_DYNAMICS, 12 * num_frames * h * w, ("num_frames", "spectrum"),
                       f"the motion of {num_frames} frames at {w}x{h}")
        k = spectrum.num_frequencies
        frequencies = torch.arange(k, dtype=torch.float32) * spectrum.fps / spectrum.num_frames
        try:
            displacement = simulate_modal_response(spectrum.coeffs, (x, y), (dx, dy), fps=fps, num_frames=num_frames,
                                                   frequencies_hz=frequencies, damping=damping, mass=mass,
                                                   hold_frames=hold_frames, progress=Progress(num_frames))
        except ValueError as error:
            raise library_error(NODE_DYNAMICS, error, MODAL_ARGUMENTS, "spectrum", "settings the simulation accepts") \
                from error
        return io.NodeOutput(Motion(displacement=displacement, fps=fps))


# ops.modal's words for InteractiveDynamics' inputs, in its error messages.
MODAL_ARGUMENTS = {"drag_point": "x", "drag_displacement": "dx", "fps": "fps", "num_frames": "num_frames",
                   "damping": "damping", "mass": "mass", "hold_frames": "hold_frames", "substeps": "damping",
                   "coeffs": "spectrum", "frequencies_hz": "spectrum"}


class PreviewSpectrum(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_PREVIEW,
            display_name="Preview Spectrum",
            category=f"{CATEGORY}/render",
            description=("Shows a spectral volume: amplitude per frequency (brightness), phase (hue), and the power "
                         "of each frequency as a bar plot (GID's power spectrum falls off with frequency)."),
            inputs=[DynSpectrum.Input("spectrum", tooltip="A spectral volume."),
                    io.Int.Input("max_frequencies", default=8, min=1, max=64,
                                 tooltip="How many frequencies to show as maps.")],
            outputs=[io.Image.Output("maps", display_name="maps",
                                     tooltip="One picture per frequency: phase as hue, amplitude as value."),
                     io.Image.Output("power", display_name="power",
                                     tooltip="The mean power of each frequency, a bar plot with axes (Hz, log "
                                     "power in px^2).")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, spectrum, max_frequencies) -> io.NodeOutput:
        from ...ops.spectral import bin_frequencies
        from ...ops.spectrum_viz import spectrum_maps, spectrum_power_plot

        if not isinstance(spectrum, SpectralVolume):
            raise NodeInputError(NODE_PREVIEW, "spectrum", "a DYN_SPECTRUM", _describe(spectrum))
        maps = spectrum_maps(spectrum.coeffs[:max_frequencies])
        plot = spectrum_power_plot(spectrum.coeffs, bin_frequencies(spectrum.num_frequencies, spectrum.num_frames,
                                                                    spectrum.fps))
        return io.NodeOutput(maps.movedim(1, -1).contiguous(), plot[None].movedim(1, -1).contiguous())


def _describe(value) -> str:
    return "nothing" if value is None else type(value).__name__


NODES = [SpectralVolumeSampler, SpectrumToMotion, MotionFromVideo, InteractiveDynamics, PreviewSpectrum]

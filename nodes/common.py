"""What every node of the pack shares: the custom types, input checks with clear errors, progress and interrupts.

This is the only place (with the node modules themselves) that talks to ComfyUI.
"""
from __future__ import annotations

import math

import torch
from comfy_api.latest import io

CATEGORY = "ImageDynamics"
MODEL_FOLDER = "motion_models"  # ComfyUI's models/motion_models (registered by extension.py)

# The pack's own types, namespaced; their conventions are documented in ops/containers.py.
DynMotion = io.Custom("DYN_MOTION")
DynFlow = io.Custom("DYN_FLOW")
DynSpectrum = io.Custom("DYN_SPECTRUM")
DynModel = io.Custom("DYN_MODEL")
DynGuidance = io.Custom("DYN_GUIDANCE")
DynLongSchedule = io.Custom("DYN_LONG_SCHEDULE")
# The core's TRACKS socket, {"track_path": [T,N,2], "track_visibility": [T,N]} (newer ComfyUI); its Python form is
# ops.trajectories.Tracks.
CoreTracks = io.Custom("TRACKS")


class NodeInputError(ValueError):
    """Bad input to a node. The message names the node, the input and what was expected."""

    def __init__(self, node: str, input_name: str, expected: str, got: str | None = None):
        message = f"{node}: input '{input_name}': expected {expected}"
        if got is not None:
            message += f", got {got}"
        super().__init__(message)
        self.node, self.input_name = node, input_name


def image_to_bchw(image: torch.Tensor, node: str, input_name: str = "image") -> torch.Tensor:
    """ComfyUI IMAGE [B,H,W,C] in [0,1] -> [B,3,H,W] float32, checked (alpha dropped, grey repeated)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise NodeInputError(node, input_name, "an IMAGE batch [B,H,W,C]",
                             f"shape {tuple(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__)
    if image.shape[-1] not in (1, 3, 4):
        raise NodeInputError(node, input_name, "1, 3 or 4 channels", f"{image.shape[-1]}")
    check_finite(image, node, input_name)
    x = image[..., :3] if image.shape[-1] >= 3 else image.expand(*image.shape[:-1], 3)
    return x.movedim(-1, 1).float().contiguous()


def bchw_to_image(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> ComfyUI IMAGE [B,H,W,C] float32 in [0,1] on the intermediate device."""
    import comfy.model_management

    return x.clamp(0, 1).movedim(1, -1).float().contiguous().to(comfy.model_management.intermediate_device())


def mask_to_b1hw(mask: torch.Tensor | None, size: tuple[int, int], node: str, input_name: str = "mask",
                 allow_empty: bool = False) -> torch.Tensor | None:
    """ComfyUI MASK [B,H,W] (or [H,W]) -> [1,1,H,W] in [0,1], checked against the picture size (H, W)."""
    if mask is None:
        return None
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise NodeInputError(node, input_name, "a MASK [B,H,W]", f"shape {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) != tuple(size):
        raise NodeInputError(node, input_name, f"a mask of the picture's size {size[1]}x{size[0]} (W x H)",
                             f"{mask.shape[-1]}x{mask.shape[-2]}")
    check_finite(mask, node, input_name)
    m = mask[:1, None].float().clamp(0, 1)
    if not allow_empty and float(m.max()) <= 0:
        raise NodeInputError(node, input_name, "a mask with at least one non-zero pixel (the region that moves)",
                             "an empty mask")
    return m


def check_finite(x: torch.Tensor, node: str, input_name: str) -> None:
    # A sum is finite iff every value is (barring overflow, which the count below rules out), and unlike
    # isfinite(x) it needs no temporary the size of x (a long motion is hundreds of MB).
    if bool(torch.isfinite(x.sum())):
        return
    bad = sum(int((~torch.isfinite(part)).sum()) for part in x.reshape(-1).split(1 << 22))
    if bad:
        raise NodeInputError(node, input_name, "finite values", f"{bad} NaN or infinite values")


def check_positive(value: float, node: str, input_name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise NodeInputError(node, input_name, "a finite number > 0", repr(value))


def intermediate_device() -> torch.device:
    import comfy.model_management

    return comfy.model_management.intermediate_device()


def compute_device() -> torch.device:
    import comfy.model_management

    return comfy.model_management.get_torch_device()


class Progress:
    """A ComfyUI progress bar that also checks for the user's interrupt at every step."""

    def __init__(self, total: int):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(max(int(total), 1))
        self._shown: tuple[int, int | None] | None = None

    @staticmethod
    def check_interrupt() -> None:
        import comfy.model_management

        comfy.model_management.throw_exception_if_processing_interrupted()

    def step(self, n: int = 1) -> None:
        self.check_interrupt()
        self.bar.update(n)

    def __call__(self, done: int, total: int | None = None) -> None:
        """Callback form for library loops: ``progress(done, total)``. Checks the interrupt at every call; the bar
        (a message to the front end) is updated only when its value changes."""
        self.check_interrupt()
        if (done, total) != self._shown:
            self._shown = (done, total)
            self.bar.update_absolute(done, total)

"""What every node of the pack shares: the custom types, input checks with clear errors, progress and interrupts.

This is the only place (with the node modules themselves) that talks to ComfyUI.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
import re

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


def library_error(node: str, error: Exception, arguments: dict[str, str], default: str,
                  expected: str) -> NodeInputError:
    """A library's ValueError as the node's error, naming the input whose library argument the message names first.

    Args:
        arguments: library argument (a word of the library's messages, e.g. "slow_factor") -> the node's input.
        default: the input to name when the message names none of them.

    Example:
        >>> str(library_error("Node", ValueError("slow_factor must be >= 1, got 0.5"), {"slow_factor": "slow_motion"},
        ...                   "model", "settings the model accepts"))
        "Node: input 'slow_motion': expected settings the model accepts, got slow_factor must be >= 1, got 0.5"
    """
    message = str(error)
    found = [(m.start(), name) for word, name in arguments.items()
             for m in [re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", message)] if m]
    return NodeInputError(node, min(found)[1] if found else default, expected, message)


def check_finite(x: torch.Tensor, node: str, input_name: str) -> None:
    # A sum is finite iff every value is (barring overflow, which the count below rules out), and unlike
    # isfinite(x) it needs no temporary the size of x (a long motion is hundreds of MB).
    if bool(torch.isfinite(x.sum())):
        return
    bad = sum(int((~torch.isfinite(part)).sum()) for part in x.reshape(-1).split(1 << 22))
    if bad:
        raise NodeInputError(node, input_name, "finite values", f"{bad} NaN or infinite values")


# ----------------------------------------------------------------------------------------- inputs against the schema
# ComfyUI's own validation lets NaN through every FLOAT (NaN < min and NaN > max are both false), does not check V3
# combos at all, and checks nothing that arrives through a link. So every node's ``execute`` is wrapped in
# ``checked_inputs``, which holds each input to the node's own schema before the node runs.

# The Python class behind each of the pack's socket types: (module relative to the pack, class name).
PACK_TYPES: dict[str, tuple[str, str]] = {
    "DYN_MOTION": ("ops.containers", "Motion"),
    "DYN_FLOW": ("ops.containers", "VelocityField"),
    "DYN_SPECTRUM": ("ops.containers", "SpectralVolume"),
    "DYN_MODEL": ("nodes.motion.load_model", "MotionModel"),
    "DYN_GUIDANCE": ("models.guidance", "LoopGuidance"),
    "DYN_LONG_SCHEDULE": ("models.long_video", "RescheduleConfig"),
    "DYN_CONTROL": ("nodes.control.sparse_flow", "SparseFlowControl"),
}
_MISSING = object()


def checked_inputs(execute):
    """Decorator for a node's ``execute`` (under ``@classmethod``): its inputs are held to the node's schema first.

    Example::

        class MyNode(io.ComfyNode):
            @classmethod
            @checked_inputs
            def execute(cls, image, strength): ...
    """
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def run(cls, *args, **kwargs):
        values = signature.bind_partial(cls, *args, **kwargs).arguments
        check_inputs(cls.define_schema(), values)
        return execute(cls, *args, **kwargs)

    run.checks_inputs = True
    return run


def check_inputs(schema: io.Schema, values: dict) -> None:
    """Check every input in ``values`` (name -> value) against its declaration in ``schema``.

    FLOAT: a finite number within the input's min and max; INT: a whole number within them; COMBO: one of its
    options; STRING and BOOLEAN: of that type; IMAGE, MASK and LATENT: tensors with at least one element; the pack's
    own types (``PACK_TYPES``): an instance of their class. A required input may not be None; an optional one that
    is None or absent is not checked. Raises NodeInputError naming the node and the input.
    """
    for spec in schema.inputs:
        value = values.get(spec.id, _MISSING)
        if value is _MISSING:
            continue
        if value is None:
            if spec.optional:
                continue
            raise NodeInputError(schema.node_id, spec.id, f"a value for this {spec.get_io_type()} input", "nothing")
        expected = _check_value(spec, value)
        if expected is not None:
            raise NodeInputError(schema.node_id, spec.id, expected, _describe_value(value))


def _check_value(spec, value) -> str | None:
    """What ``value`` should have been, or None when it fits ``spec``."""
    kind = spec.get_io_type()
    if kind in ("FLOAT", "INT"):
        return _check_number(value, kind == "INT", getattr(spec, "min", None), getattr(spec, "max", None))
    if kind == "COMBO":
        options = list(spec.options or [])
        if not options or value in options:
            return None
        shown = ", ".join(repr(o) for o in options[:20])
        return f"one of {shown}" if len(options) <= 20 else f"one of its {len(options)} options ({shown}, ...)"
    if kind == "STRING":
        return None if isinstance(value, str) else "text"
    if kind == "BOOLEAN":
        return None if isinstance(value, (bool, numbers.Integral)) and value in (0, 1) else "true or false"
    if kind == "IMAGE":
        return _check_tensor(value, (4,), "an IMAGE batch [B,H,W,C] of at least one picture of at least 1x1 pixels")
    if kind == "MASK":
        return _check_tensor(value, (2, 3), "a MASK [B,H,W] of at least 1x1 pixels")
    if kind == "LATENT":
        samples = value.get("samples") if isinstance(value, dict) else None
        return _check_tensor(samples, None, "a LATENT (a dict whose 'samples' tensor is not empty)")
    if kind in PACK_TYPES:
        module, name = PACK_TYPES[kind]
        cls = getattr(importlib.import_module(f"..{module}", __package__), name)
        return None if isinstance(value, cls) else f"a {kind} ({name})"
    return None


def _check_number(value, whole: bool, low, high) -> str | None:
    kind = "a whole number" if whole else "a finite number"
    if low is not None and high is not None:
        kind += f" in [{low:g}, {high:g}]"
    elif low is not None:
        kind += f" >= {low:g}"
    elif high is not None:
        kind += f" <= {high:g}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return kind
    if not isinstance(value, numbers.Integral):  # (math.isfinite of a huge int would overflow)
        if not math.isfinite(value) or (whole and not float(value).is_integer()):
            return kind
    if (low is not None and value < low) or (high is not None and value > high):
        return kind
    return None


def _check_tensor(value, ndims: tuple[int, ...] | None, expected: str) -> str | None:
    if getattr(value, "is_nested", False):  # a nested (multi-stream) latent: the node decides
        return None
    if not isinstance(value, torch.Tensor) or (ndims is not None and value.ndim not in ndims) or value.numel() == 0:
        return expected
    return None


def _describe_value(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor):
        return f"a LATENT of shape {list(value['samples'].shape)}"
    if isinstance(value, (str, numbers.Number)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return type(value).__name__


# ----------------------------------------------------------------------------------------- memory
MEMORY_HEADROOM = 0.9  # of the free memory a node may plan to use (the rest is for ComfyUI and other allocations)


def free_memory(device: torch.device | None = None) -> int:
    """Bytes free on ``device`` (default the CPU, where the pack's frames and motions live), as ComfyUI counts them
    (on the CPU that is psutil's available memory)."""
    if device is None or torch.device(device).type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    import comfy.model_management

    return int(comfy.model_management.get_free_memory(device))


def format_bytes(n: float) -> str:
    """``1.5e9`` -> ``'1.4 GiB'`` (bytes, KiB, MiB or GiB)."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def require_memory(node: str, needed: float, lower: tuple[str, ...], what: str, free: int | None = None,
                   device: torch.device | None = None) -> None:
    """Refuse, before allocating, what would not fit in memory: a NodeInputError naming the first input of
    ``lower`` (the inputs that would make it fit, all listed), with the bytes needed and free.

    Args:
        needed: bytes the node is about to allocate (an estimate: what it keeps plus its working memory).
        lower: the inputs to lower, most effective first (e.g. ``("num_frames", "image")``).
        what: what needs the memory, for the message (e.g. "the motion of 4096 frames at 2048x2048").
        free: free bytes (default :func:`free_memory` of ``device``).
    """
    free = free_memory(device) if free is None else int(free)
    if needed > MEMORY_HEADROOM * free:
        raise NodeInputError(node, lower[0], f"settings that fit in memory (lower {' or '.join(lower)})",
                             f"{what}, which needs about {format_bytes(needed)} with {format_bytes(free)} free")


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

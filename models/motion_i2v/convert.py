"""Convert Motion-I2V's released weights into the pack's checkpoint format (one file per component).

The released files (github.com/G-U-N/Motion-I2V, huggingface.co/wangfuyun/Motion-I2V) and what they become:

==========================================================  ===========================================
released file                                               pack file (family)
==========================================================  ===========================================
``models/stage1/StableDiffusion-FlowGen/unet/diffusion_pytorch_model.bin``  ``motion_i2v_stage1`` (motion_i2v.stage1)
``models/stage1/StableDiffusion-FlowGen/controlnet/controlnet.bin``          ``motion_i2v_controlnet``
``models/stage1/StableDiffusion-FlowGen/vae_flow/diffusion_pytorch_model.bin``  ``motion_i2v_flow_vae``
``models/stage2/Motion_Module/motion_block.bin``                             ``motion_i2v_stage2``
==========================================================  ===========================================

The SD 1.5 image VAE, text encoder and spatial U-Net are not converted: they come from the user's ComfyUI
checkpoint.

Key mapping (everything else is identity, because the pack's modules use the released names):

- ControlNet: the ``controlnet.`` prefix is removed (the official code held it as a submodule of the U-Net).
  A file whose keys mix U-Net and ``controlnet.`` keys is split into both components.
- Flow VAE: diffusers 0.11 attention names become current ones: ``query -> to_q``, ``key -> to_k``,
  ``value -> to_v``, ``proj_attn -> to_out.0`` (``group_norm`` unchanged; 1x1-conv weights are squeezed).
- Stage 2: only ``*.motion_modules.*`` keys are kept (a whole stage-2 U-Net may be given).
- Missing ``pos_encoder.pe`` buffers (fixed sinusoids, nothing learnt) are filled with the computed table.

Pickles are read once, with ``torch.load(weights_only=True)``; ``.safetensors`` inputs are read as such.
Every key and shape is checked against the model built from the config before anything is written.

Command line (from the folder that contains the pack, or by path)::

    python path/to/ComfyUI-ImageDynamics/models/motion_i2v/convert.py \\
        Motion-I2V/models/stage1/StableDiffusion-FlowGen/unet/diffusion_pytorch_model.bin \\
        Motion-I2V/models/stage1/StableDiffusion-FlowGen/controlnet/controlnet.bin \\
        Motion-I2V/models/stage1/StableDiffusion-FlowGen/vae_flow/diffusion_pytorch_model.bin \\
        Motion-I2V/models/stage2/Motion_Module/motion_block.bin \\
        -o ComfyUI/models/motion_models/ --fp16

Example:
    >>> import os, tempfile, torch
    >>> from .config import tiny_config
    >>> from .model import build_component
    >>> tmp = tempfile.mkdtemp()
    >>> torch.save(build_component("stage2", tiny_config("stage2")).state_dict(), os.path.join(tmp, "mm.bin"))
    >>> out = convert([os.path.join(tmp, "mm.bin")], tmp, configs={"stage2": tiny_config("stage2")})
    >>> sorted(out)
    ['stage2']
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a script: import the pack without its ComfyUI __init__
    import importlib
    import pathlib
    import sys
    import types

    _root = pathlib.Path(__file__).resolve().parents[2]
    _package = types.ModuleType("_imagedynamics_cli")
    _package.__path__ = [str(_root)]
    sys.modules["_imagedynamics_cli"] = _package
    sys.exit(importlib.import_module("_imagedynamics_cli.models.motion_i2v.convert").main())

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from ..checkpoint import CheckpointError, compare_shapes  # noqa: E402
from .checkpoint import save  # noqa: E402
from .config import COMPONENTS, resolve_config  # noqa: E402
from .model import build_component  # noqa: E402

CONTROLNET_PREFIX = "controlnet."
VAE_ATTENTION_RENAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a pickle read with ``weights_only=True`` (on the CPU)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "module", "model"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{os.path.basename(path)}: holds a {type(state).__name__}, not a state dict")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{os.path.basename(path)}: non-tensor entries {bad[:3]}")
    return dict(state)


def detect_component(keys: Sequence[str]) -> str:
    """Name the component that a (prefix-free) set of keys belongs to."""
    keyset = set(keys)
    if "encoder.conv_in.weight" in keyset and "decoder.conv_out.weight" in keyset:
        return "flow_vae"
    if any(k.startswith("controlnet_cond_embedding.") for k in keyset):
        return "controlnet"
    if "conv_in.weight" in keyset and any(k.startswith("stride_embedding.") for k in keyset):
        return "stage1"
    if keyset and all(".motion_modules." in k for k in keyset):
        return "stage2"
    if "conv_in.weight" in keyset:
        raise CheckpointError("a U-Net without a frame-stride embedding: not a Motion-I2V stage-1 file (the SD 1.5 "
                              "U-Net comes from your ComfyUI checkpoint and needs no conversion)")
    raise CheckpointError(f"unrecognised state dict (first keys: {sorted(keyset)[:3]})")


def split_components(state: dict[str, torch.Tensor],
                     component: str | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Split a released state dict into ``{component: state}`` with the pack's key names (see module doc)."""
    if component is not None and component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}")
    prefixed = {k[len(CONTROLNET_PREFIX):]: v for k, v in state.items() if k.startswith(CONTROLNET_PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(CONTROLNET_PREFIX)}
    if component is not None:
        if component == "controlnet":
            return {"controlnet": map_keys("controlnet", {**rest, **prefixed})}
        if prefixed and not rest:
            raise CheckpointError(f"only 'controlnet.' keys in a file given as {component}")
        return {component: map_keys(component, rest)}
    out = {}
    if prefixed:
        out["controlnet"] = map_keys("controlnet", prefixed)
    if rest:
        name = detect_component(list(rest))
        if name in out:
            raise CheckpointError("two ControlNets in one file")
        out[name] = map_keys(name, rest)
    if not out:
        raise CheckpointError("empty state dict")
    return out


def map_keys(component: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released key names -> the pack's module names for one component."""
    if component == "controlnet":
        return {k[len(CONTROLNET_PREFIX):] if k.startswith(CONTROLNET_PREFIX) else k: v for k, v in state.items()}
    if component == "flow_vae":
        conv_in = state.get("encoder.conv_in.weight")
        if conv_in is not None and conv_in.ndim == 4 and conv_in.shape[1] == 3:
            raise CheckpointError("an RGB image VAE (encoder.conv_in takes 3 channels), not the 2-channel flow VAE; "
                                  "the image VAE comes from your SD 1.5 checkpoint")
        out = {}
        for key, value in state.items():
            parts = key.split(".")
            if len(parts) >= 2 and ".attentions." in key and parts[-2] in VAE_ATTENTION_RENAMES:
                parts[-2] = VAE_ATTENTION_RENAMES[parts[-2]]
                key = ".".join(parts)
                if value.ndim == 4 and value.shape[-2:] == (1, 1):
                    value = value[:, :, 0, 0]
            out[key] = value
        return out
    if component == "stage2":
        return {k: v for k, v in state.items() if ".motion_modules." in k}
    return dict(state)


def map_key_names(component: str, keys: Sequence[str]) -> list[str]:
    """:func:`map_keys` on names only (e.g. the manifest's keys)."""
    dummy = torch.empty(0)
    return list(map_keys(component, dict.fromkeys(keys, dummy)))


def _fill_positional_tables(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Add the fixed sinusoidal ``pos_encoder.pe`` tables if a file lacks them (they hold no learnt values)."""
    from .temporal import SinusoidalPositions

    for key, target in model.state_dict().items():
        if key.endswith("pos_encoder.pe") and key not in state:
            state[key] = SinusoidalPositions(target.shape[-1], target.shape[-2]).pe


def _output_path(output: pathlib.Path, component: str, fp16: bool, single_file: bool) -> pathlib.Path:
    if single_file:
        return output
    return output / f"motion_i2v_{component}{'_fp16' if fp16 else ''}.safetensors"


def convert(input_paths: str | os.PathLike | Sequence[str | os.PathLike], output_path: str | os.PathLike,
            fp16: bool = False, *, component: str | None = None,
            configs: Mapping[str, dict[str, Any]] | None = None) -> dict[str, pathlib.Path]:
    """Convert released state-dict files to pack checkpoints; returns ``{component: written path}``.

    Args:
        input_paths: one path or several (``.bin``/``.pt``/``.ckpt`` pickles or ``.safetensors``).
        output_path: a directory (files ``motion_i2v_<component>[_fp16].safetensors`` are written in it), or
            a ``.safetensors`` file name when the inputs hold exactly one component.
        fp16: store floating tensors as float16 (half the size); otherwise tensors keep their dtype.
        component: force the component of every input instead of detecting it from the keys.
        configs: ``{component: config}`` overrides of the full-size architecture (e.g. tiny test models).

    Raises:
        CheckpointError: unreadable input, unknown keys, or keys/shapes that do not fit the architecture.
    """
    paths = [input_paths] if isinstance(input_paths, (str, os.PathLike)) else list(input_paths)
    if not paths:
        raise ValueError("no input files")
    configs = dict(configs or {})
    unknown = set(configs) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"configs for unknown components {sorted(unknown)}")
    found: dict[str, tuple[dict[str, torch.Tensor], str]] = {}
    for path in paths:
        name = os.path.basename(os.fspath(path))
        for comp, state in split_components(read_state_dict(path), component).items():
            if comp in found:
                raise CheckpointError(f"{name}: a second {comp} (first from {found[comp][1]})")
            found[comp] = (state, name)

    output = pathlib.Path(output_path)
    single_file = output.suffix == ".safetensors"
    if single_file and len(found) != 1:
        raise ValueError(f"the inputs hold {len(found)} components ({', '.join(found)}); give a directory")
    # check everything before writing anything
    resolved = {}
    for comp, (state, name) in found.items():
        config = resolve_config(comp, configs.get(comp))
        with torch.device("meta"):
            model = build_component(comp, config)
        _fill_positional_tables(model, state)
        problems = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                                  {k: tuple(v.shape) for k, v in state.items()}, limit=5)
        if problems:
            raise CheckpointError(f"{name} ({comp}) does not fit the {comp} architecture: " + "; ".join(problems))
        resolved[comp] = config
    (output.parent if single_file else output).mkdir(parents=True, exist_ok=True)
    written = {}
    for comp, (state, _) in found.items():
        target = _output_path(output, comp, fp16, single_file)
        save(target, state, comp, resolved[comp], fp16=fp16)
        written[comp] = target
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``convert.py INPUT... -o OUTPUT [--fp16] [--component C] [--config C=FILE.json]``."""
    parser = argparse.ArgumentParser(
        prog="convert.py", description="Convert Motion-I2V's released .bin files to ImageDynamics checkpoints.")
    parser.add_argument("inputs", nargs="+", help="released state-dict files (.bin, .pt, .ckpt, .safetensors)")
    parser.add_argument("-o", "--output", required=True, help="output directory (or a .safetensors file name)")
    parser.add_argument("--fp16", action="store_true", help="store float16 tensors (half the size)")
    parser.add_argument("--component", choices=COMPONENTS, help="force the component instead of detecting it")
    parser.add_argument("--config", action="append", default=[], metavar="COMPONENT=FILE.json",
                        help="architecture override for a component (default: the released architecture)")
    args = parser.parse_args(argv)
    configs = {}
    for item in args.config:
        comp, _, file = item.partition("=")
        if not file:
            parser.error(f"--config expects COMPONENT=FILE.json, got {item!r}")
        with open(file, encoding="utf-8") as handle:
            configs[comp] = json.load(handle)
    try:
        written = convert(args.inputs, args.output, fp16=args.fp16, component=args.component, configs=configs)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    for comp, path in written.items():
        print(f"{comp}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

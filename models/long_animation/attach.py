"""Attaching :class:`~.model.LongAnimationModel` to an SVD U-Net: one code path for ComfyUI and the trainer.

The U-Net is ComfyUI's ``VideoUNet`` (``comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel`` with temporal
attention), found by duck typing so that this module imports nothing from ComfyUI:

- :func:`temporal_blocks` lists its spatio-temporal transformers (modules with ``time_stack`` and
  ``time_mixer``) in the order the U-Net runs them, with their latent level;
- :class:`MotionTemporalBlock` replaces one temporal transformer block ``time_stack[d]``: it runs the original
  block, then adds the motion attention (Eq. 4) of its tokens. It registers the original block's children under
  the same names, so every weight keeps its key (``...time_stack.0.attn1.to_q.weight``: LoRA patches,
  offloading and state dicts are unchanged), and holds the original and the conditioning outside the module
  tree (their parameters live elsewhere);
- :class:`MotionConditioning` holds the additions, the flow field and M_s for a run: the blocks ask it for motion
  features (encoded once per forward, at the latent size and frame count of the call, from each frame's
  displacement from frame 0: :meth:`MotionConditioning.encoder_input`), and it is the U-Net's ``emb_patch``
  (``transformer_options["patches"]["emb_patch"]``, called by the U-Net with ``(emb, model_channels,
  transformer_options)``), which adds the strength embedding to the timestep embedding;
- :func:`lora_updates` lists ``(weight key, LoRA)`` for the static-camera LoRA.

ComfyUI (``nodes/motion/long_animation_patch.py``) installs the blocks as object patches of a ModelPatcher clone,
the conditioning with ``set_model_emb_patch`` and the LoRA as weight patches; the trainer calls :func:`install`
on the U-Net module it is handed (blocks set in place, LoRA through ``torch.nn.utils.parametrize``) and passes
:meth:`MotionConditioning.transformer_options` to the U-Net's forward.
"""
from __future__ import annotations

import torch
from torch import nn

from ...ops.eulerian import integrate_flows
from .config import LORA_TARGETS, SVDFit
from .model import LongAnimationModel, lora_name


def temporal_blocks(unet: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """``(path, module, level)`` of every spatio-temporal transformer of ``unet``, in the order it runs them.

    The level counts the ``Downsample`` modules met before (minus the ``Upsample`` ones) in module order, which
    is the execution order of ComfyUI's U-Net (input blocks, middle block, output blocks).
    """
    found, level = [], 0
    for path, module in unet.named_modules():
        kind = type(module).__name__
        if kind == "Downsample":
            level += 1
        elif kind == "Upsample":
            level -= 1
        elif isinstance(getattr(module, "time_stack", None), nn.ModuleList) and hasattr(module, "time_mixer"):
            found.append((path, module, level))
    return found


def fit_from_unet(unet) -> SVDFit:
    """The :class:`SVDFit` of a ComfyUI SVD U-Net module (``comfy...openaimodel.UNetModel`` with temporal
    attention), read from its modules without importing ComfyUI (see :func:`temporal_blocks`)."""
    blocks = temporal_blocks(unet)
    if not blocks:
        raise ValueError("the U-Net has no spatio-temporal transformers (not an SVD U-Net)")
    channels = tuple(int(b.in_channels) for _, b, _ in blocks)
    levels = tuple(level for _, _, level in blocks)
    block = blocks[0][1]
    depth = len(block.time_stack)
    heads = block.time_stack[0].attn1.heads
    inner = block.time_stack[0].attn1.to_q.out_features
    time_embed = unet.time_embed[-1].out_features
    context = block.time_stack[0].attn2.to_k.in_features
    return SVDFit(channels, levels, depth, inner // heads, int(unet.model_channels), int(time_embed), int(context))



def check_fit(unet: nn.Module, fit: SVDFit) -> list[tuple[str, nn.Module, int]]:
    """:func:`temporal_blocks` of ``unet`` after checking them against ``fit``; ValueError naming the first
    mismatch (block count, channels, level, temporal depth, widths)."""
    blocks = temporal_blocks(unet)
    if not blocks:
        raise ValueError("an SVD U-Net (with spatio-temporal transformers), got a U-Net without temporal attention")
    have = fit_from_unet(unet)
    for name in ("block_channels", "block_levels", "time_depth", "head_channels", "model_channels",
                 "time_embed_dim", "context_dim"):
        wanted, got = getattr(fit, name), getattr(have, name)
        if wanted != got:
            raise ValueError(f"additions for an SVD with {name} = {wanted}, the MODEL has {name} = {got}")
    return blocks


class MotionConditioning:
    """The additions, the motion field and M_s of one run (see the module docstring).

    Args:
        model: the additions.
        flows: ``[F, 2, H, W]`` or ``[B, F, 2, H, W]`` flows in pixels per frame at the picture's size; ``F = 1``
            is a static field (the paper's dense field at inference); otherwise one flow per frame (frame k's flow
            F_{k->k+1}); ``B`` = 1 or one per video of the U-Net's batch. The encoder sees what
            :meth:`encoder_input` makes of them: by default each frame's displacement from frame 0 (Eq. 3).
        strength: M_s in pixels per frame: a number, or ``[B]``.
    """

    def __init__(self, model: LongAnimationModel, flows: torch.Tensor, strength: float | torch.Tensor) -> None:
        if flows.ndim == 4:
            flows = flows[None]
        if flows.ndim != 5 or flows.shape[2] != 2:
            raise ValueError(f"flows must be [F, 2, H, W] or [B, F, 2, H, W], got {tuple(flows.shape)}")
        self.model, self.flows = model, flows
        self.strength = torch.as_tensor(strength, dtype=torch.float32).reshape(-1)
        self._features: dict[tuple, list[torch.Tensor]] = {}

    def __deepcopy__(self, memo):  # ComfyUI deep-copies model_options on every clone; the run state is shared
        return self

    def transformer_options(self) -> dict:
        """``transformer_options`` for a U-Net forward outside ComfyUI (the trainer): the emb patch."""
        return {"patches": {"emb_patch": [self]}}

    def reset(self) -> None:
        self._features.clear()

    def update(self, flows: torch.Tensor, strength: float | torch.Tensor) -> None:
        """A new field and M_s for the next forward (the trainer's batches), with the same layout rules."""
        self.__init__(self.model, flows, strength)

    def __call__(self, emb: torch.Tensor, model_channels: int, transformer_options: dict) -> torch.Tensor:
        """``emb_patch``: ``emb`` [B*T, D] + the strength embedding of each video's M_s."""
        if torch.is_grad_enabled():
            self.reset()  # training: features are recomputed (with gradients) in every forward
        weight = self.model.strength.linear_1.weight
        add = self.model.strength(self.strength.to(weight.device))          # [B_s, D]
        rows = emb.shape[0]
        if add.shape[0] > 1:
            if rows % add.shape[0]:
                raise ValueError(f"{add.shape[0]} motion strengths for a batch of {rows} frames")
            add = add.repeat_interleave(rows // add.shape[0], dim=0)
        return emb + add.to(emb.device, emb.dtype)

    def encoder_input(self, frames: int) -> torch.Tensor:
        """What the motion encoder sees for each of ``frames`` frames: ``[B, F', 2, H, W]`` pixels.

        ``motion_input = "displacement"`` (the default, :class:`~.config.LongAnimationConfig`): frame k's
        displacement from frame 0 along the trajectories (Eq. 3, ``ops.eulerian.integrate_flows``) -- a static
        field (``F = 1``) integrated as an Eulerian velocity over ``frames - 1`` steps, per-frame flows (``F =
        frames``, frame k's F_{k->k+1}) through their first ``frames - 1``; ``F' = frames``. ``"flow"`` (version-1
        files): the flows as given (``F' = F``). This is the one place the trainer and the node turn a field into
        per-frame motion.
        """
        b, f = self.flows.shape[:2]
        if f not in (1, frames):
            raise RuntimeError(f"a motion field of {f} frames for a U-Net call of {frames}-frame videos; give one "
                               "static field or one flow per frame")
        if self.model.config.motion_input == "flow":
            return self.flows
        steps = self.flows.expand(b, frames - 1, *self.flows.shape[2:]) if f == 1 else self.flows[:, :frames - 1]
        return integrate_flows(steps)

    def features(self, level: int, tokens: int, frames: int, videos: int, latent_size: tuple[int, int],
                 device: torch.device) -> torch.Tensor:
        """Motion features of ``level`` as temporal tokens ``[videos * tokens, frames, C_l]``."""
        key = (tuple(latent_size), device, frames)
        if key not in self._features:
            weight = self.model.encoder.stem.weight
            inputs = self.encoder_input(frames).to(weight.device)
            b, f = inputs.shape[:2]
            flat = inputs.reshape(b * f, *inputs.shape[2:])
            self._features[key] = [x.view(b, f, *x.shape[1:]) for x in self.model.encoder(flat, latent_size)]
        feats = self._features[key][level]                                   # [B, F, C, h, w]
        b, f, c, h, w = feats.shape
        if h * w != tokens:
            raise RuntimeError(f"the motion features of level {level} are {h} x {w}, the U-Net block has {tokens} "
                               "positions")
        if b not in (1, videos):
            raise RuntimeError(f"motion fields for {b} videos, the U-Net batch holds {videos}")
        tokens_first = feats.permute(0, 3, 4, 1, 2).reshape(b, h * w, f, c)   # [B, S, F, C]
        tokens_first = tokens_first.expand(videos, h * w, frames, c)
        return tokens_first.reshape(videos * h * w, frames, c)


class MotionTemporalBlock(nn.Module):
    """``time_stack[d]`` of a spatio-temporal transformer with the motion attention added (module docstring).

    Called by ``SpatialVideoTransformer.forward`` as ``block(x, context=..., transformer_options=...)`` with
    ``x`` [(videos * positions), frames, C]; ``transformer_options["original_shape"]`` is the U-Net input's shape
    ``[videos * frames, C_in, h, w]`` (set by ComfyUI's U-Net), which gives the latent size and the frame count.
    """

    def __init__(self, block: nn.Module, conditioning: MotionConditioning, index: int, level: int) -> None:
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        self.__dict__["original"] = block
        self.__dict__["conditioning"] = conditioning
        self.index, self.level = index, level

    def forward(self, x: torch.Tensor, context=None, transformer_options: dict | None = None) -> torch.Tensor:
        options = transformer_options if transformer_options is not None else {}
        out = self.original(x, context=context, transformer_options=options)
        shape = options.get("original_shape")
        if shape is None:
            raise RuntimeError("MotionTemporalBlock needs transformer_options['original_shape'] (set by the U-Net)")
        frames = x.shape[1]
        h, w = int(shape[-2]), int(shape[-1])
        positions = -(-h // 2 ** self.level) * -(-w // 2 ** self.level)
        videos = x.shape[0] // positions
        cond = self.conditioning
        adapter = cond.model.adapters[self.index]
        weight = adapter.to_q.weight
        motion = cond.features(self.level, positions, frames, videos, (h, w), weight.device)
        add = adapter(x.to(weight.device, weight.dtype), motion.to(weight.device, weight.dtype))
        return out + add.to(out.device, out.dtype)


def lora_updates(blocks: list[tuple[str, nn.Module, int]], model: LongAnimationModel
                 ) -> list[tuple[str, nn.Module]]:
    """``(weight key relative to the U-Net, LoRA module)`` for every LoRA target of every temporal block."""
    if not model.config.lora_rank:
        return []
    updates, depth = [], model.config.svd.time_depth
    for b, (path, _, _) in enumerate(blocks):
        for d in range(depth):
            loras = model.lora[b * depth + d]
            for target in LORA_TARGETS:
                updates.append((f"{path}.time_stack.{d}.{target}.weight", loras[lora_name(target)]))
    return updates


def temporal_block_patches(blocks, model: LongAnimationModel, conditioning: MotionConditioning,
                           original_of=None) -> list[tuple[str, MotionTemporalBlock]]:
    """``(path relative to the U-Net, wrapper)`` for every ``time_stack[d]`` of ``blocks``.

    ``original_of(path)``: the unpatched block at ``path`` (ComfyUI: the ModelPatcher's ``get_model_object``,
    since the live module may carry another clone's patches); default: the module's own ``time_stack[d]``.
    """
    depth = model.config.svd.time_depth
    out = []
    for b, (path, module, level) in enumerate(blocks):
        for d in range(depth):
            original = module.time_stack[d] if original_of is None else original_of(f"{path}.time_stack.{d}")
            if isinstance(original, MotionTemporalBlock):
                raise ValueError(f"the U-Net already carries motion additions at {path}.time_stack.{d}")
            out.append((f"{path}.time_stack.{d}", MotionTemporalBlock(original, conditioning, b * depth + d, level)))
    return out


class _LoRAWeight(nn.Module):
    """``parametrize`` form of a LoRA: ``W + alpha / rank * up @ down`` (what ComfyUI's LoRA patch computes)."""

    def __init__(self, lora: nn.Module) -> None:
        super().__init__()
        self.__dict__["lora"] = lora   # the LoRA's parameters stay the additions'

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.lora.delta().to(weight.dtype)


class Installed:
    """What :func:`install` changed; :meth:`remove` restores the U-Net."""

    def __init__(self, unet, conditioning, replaced, parametrized) -> None:
        self.unet, self.conditioning = unet, conditioning
        self._replaced, self._parametrized = replaced, parametrized

    def remove(self) -> None:
        from torch.nn.utils import parametrize

        for path, original in self._replaced:
            parent, name = path.rsplit(".", 1)
            setattr(self.unet.get_submodule(parent), name, original)
        for module in self._parametrized:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        self._replaced, self._parametrized = [], []


def install(unet: nn.Module, model: LongAnimationModel, conditioning: MotionConditioning) -> Installed:
    """Put the additions into ``unet`` in place (the trainer's path; ComfyUI uses object and weight patches).

    Returns an :class:`Installed` whose ``remove()`` undoes it. Forward with
    ``transformer_options=conditioning.transformer_options()``; give each batch its field and M_s with
    ``conditioning.update(flows, strength)``.
    """
    from torch.nn.utils import parametrize

    blocks = check_fit(unet, model.config.svd)
    replaced = []
    for path, wrapper in temporal_block_patches(blocks, model, conditioning):
        parent, name = path.rsplit(".", 1)
        replaced.append((path, wrapper.original))
        setattr(unet.get_submodule(parent), name, wrapper)
    parametrized = []
    for key, lora in lora_updates(blocks, model):
        module = unet.get_submodule(key.rsplit(".", 1)[0])
        parametrize.register_parametrization(module, "weight", _LoRAWeight(lora), unsafe=True)
        parametrized.append(module)
    return Installed(unet, conditioning, replaced, parametrized)

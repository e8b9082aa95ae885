"""Loop guidance: motion self-guidance towards a seamless loop (GID Eqs. 5-6, LVMM supplement), any family.

At every denoising step n (GID Sec. 5, universal guidance of Bansal et al.):

1. eps = (1 + w) eps(z_n; n, c) - w eps(z_n; n, 0)             classifier-free guidance (the caller's eps_fn)
2. x0 = (z_n - sigma_n eps) / sqrt(alpha_bar_n),   sigma_n = sqrt(1 - alpha_bar_n)
3. decode x0 to the displacement of frames 0, 1, L and L + 1 of the motion (``decode_to_endpoints``, family
   specific: GID decodes its K spectral slices and evaluates the Fourier series at four times only; LVMM decodes
   the latent frames it needs)
4. L_g = || F_L - F_0 ||_1 + || (F_{L+1} - F_L) - (F_1 - F_0) ||_1 (GID Eq. 6), or with ``relative`` the
   scale-invariant L_g sg(A) / A (A the loop's own amplitude, below), summed over the samples of a batch
5. eps_hat = eps + u s sigma_n grad_{z_n} L_g       (s: the family's resolution scale, below)
6. z_{n-1} = scheduler step with eps_hat; self-recurrence: re-noise z_{n-1} back to level n,
   z_n = sqrt(alpha_bar_n / alpha_bar_{n-1}) z_{n-1} + sqrt(1 - alpha_bar_n / alpha_bar_{n-1}) noise,
   and repeat from 1 (``recurrences`` passes per step in all).

Decisions the papers leave open, as made here:
    * **No duplicated end frame.** A loop of L frames plays 0, 1 .. L - 1, 0, 1 ..: the frames that must equal
      frames 0 and 1 are frames L and L + 1, the ones *after* the last played frame (strict continuity: the
      motion after the loop goes on as the loop starts), so the wrap step (L - 1 -> 0) is an ordinary step
      and the velocity is matched where the motion really crosses the seam. (Asking frame L - 1 to equal frame
      0, the papers' literal reading, makes the played loop hold still at the seam: measured on the tiny GID
      prior, a wrap step of 0.1x the mean step. Comparing the velocity into frame L with the velocity out of
      frame 0 is met by stopping at a turning point, the same hold.) GID's Fourier series has period T, so a
      loop of L = T frames (or a multiple) is exact without guidance (the loss is identically zero, and GID's
      sampler skips it); LVMM samples L + 2 frames and drops the last two.
    * **u means the same at every resolution.** The norms are means over pixels and axes; the sampler passes a
      scale s so that the gradient per latent element does not depend on the model's resolution, with s = 1 at
      the paper's resolution: GID (displacements in pixels, which grow with the resolution):
      s = sqrt(H W / (256 x 160)); LVMM (flows in units of the model's ``flow_scale``, a percentile of the
      training motion in pixels, so already resolution free): s = h w / (128 x 128) over the flow size
      (the flow of a 512 x 512 frame). ``weight`` None = the family's default (``gid.LOOP_WEIGHT``,
      ``lvmm.LOOP_WEIGHT``), chosen by a sweep on the tiny priors (bench/RESULTS.md).
    * **Relative loss (option, GID's default).** Eq. 6 is smallest for no motion at all: where the prior's draw
      cannot loop at L (a sway of the wrong period), the pull shrinks it to stillness instead of moving it to
      a mode that loops (measured on the tiny GID prior: one or two draws in six end with 0.00-0.06 of their
      motion). ``relative=True`` divides each sample's L_g by A = mean_t |F_t - mean_t F| over the loop's
      frames 0 .. L - 1 (its own amplitude, pixels), so scaling a motion and its gap down together leaves
      L_g / A as it is, and multiplies by A with the gradient stopped (sg), so the value is still L_g
      (pixels) and u and s keep their meaning: grad = grad L_g - (L_g / A) grad A, the Eq. 6 pull plus a push
      to keep moving that fades as the seam closes (:func:`relative_loop_losses`). The decoder then returns
      the loop's frames as well (frames 0 .. L + 1). ``relative=False`` is the paper's plain Eq. 6. Dividing
      by a detached A (only a larger u where the motion is small) was measured and does not close the seam
      (bench/RESULTS.md).
    * The gradient goes through the denoiser (x0 depends on z_n through eps as well), as in universal
      guidance's forward guidance. ``through_denoiser=False`` treats eps as a constant (cheaper: no backward
      through the U-Net, gradient = dL/dx0 / sqrt(alpha_bar_n)).
    * ``recurrences`` counts passes per step: 2 = one step, re-noise, the same step again (GID's setting).
    * **A batch is B samples guided as alone.** ``decode_to_endpoints`` returns the four frames of every sample
      with a leading batch dimension [B, ...]; the loss is each sample's own L_g (means over its pixels and
      axes, :func:`loop_losses`) summed over the batch, so the gradient with respect to sample b's latents is
      exactly what sample b alone would get. (A mean over the whole batch, :func:`loop_loss` on [B, ...],
      would divide u by B.) This holds as long as eps_fn and the decoder treat samples independently (the
      pack's U-Nets: group norms and attention within a sample, no batch statistics); the samplers' batched
      entry points (``gid.sample_spectra``, ``lvmm.sample_latent_batch``) draw every sample's noise from its
      own seed, so a sample of a batch is the sample of that seed alone, up to float rounding.
    * Interrupts: ``step`` calls its ``check`` callback before every pass and between each pass's forward and
      backward, so a user's interrupt stops a guided step without waiting for its remaining passes.
    * Memory: only the four frames the loss needs are decoded; the denoiser call is wrapped in
      torch.utils.checkpoint (its activations are recomputed in the backward pass instead of being held
      while the decoder runs).
    * Limits: guidance finds loops the prior can produce. A prior trained on footage that never loops (camera
      pans, drifting objects) can only be pulled part of the way.

Example:
    >>> import torch
    >>> from diffusers import DDIMScheduler
    >>> scheduler = DDIMScheduler(clip_sample=False)
    >>> scheduler.set_timesteps(4)
    >>> guidance = LoopGuidance(weight=10.0, recurrences=1)
    >>> z = torch.randn(1, 2, 8, 8)
    >>> ends = lambda x0: (x0[:, :, 0], x0[:, :, 1], x0[:, :, -2], x0[:, :, -1])   # a toy "decoder"
    >>> z_prev, loss = guidance.step(scheduler, z, 0, lambda x, t: torch.zeros_like(x), ends)
    >>> z_prev.shape
    torch.Size([1, 2, 8, 8])
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.utils.checkpoint

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CheckFn = Callable[[], None]
EndpointFn = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
"""x0 -> displacements of frames (0, 1, L, L + 1) of the B samples in x0, each [B, ...], differentiable; for a
relative loss (``LoopGuidance.relative``) also a fifth element, the loop's frames 0 .. L - 1 [B, L, ...]."""

AMPLITUDE_EPS = 1e-4
"""Added to the amplitude A of :func:`relative_loop_losses` (units of the displacements, e.g. pixels): keeps a
motionless estimate finite; far below any motion that shows."""


def loop_loss(first: torch.Tensor, first_next: torch.Tensor, last: torch.Tensor, last_next: torch.Tensor
              ) -> torch.Tensor:
    """GID Eq. 6 with mean absolute errors: position and velocity mismatch between the ends of a loop.

    Args:
        first, first_next: displacement of frame 0 and frame 1 (any equal shapes, e.g. [2, H, W], pixels).
        last, last_next: displacement of frames L and L + 1, the two after the loop's last (frames 0 .. L - 1
            play), which should be frames 0 and 1 again.

    Returns:
        scalar: mean |last - first| + mean |(last_next - last) - (first_next - first)|.

    Example:
        >>> a = torch.zeros(2, 4, 4)
        >>> float(loop_loss(a, a + 1, a + 3, a + 6))     # position 3, velocity 3 - 1
        5.0
    """
    return loop_losses(*(x.unsqueeze(0) for x in (first, first_next, last, last_next)))[0]


def loop_losses(first: torch.Tensor, first_next: torch.Tensor, last: torch.Tensor, last_next: torch.Tensor
                ) -> torch.Tensor:
    """:func:`loop_loss` of every sample of a batch: the means run over each sample's own elements.

    Args:
        first, first_next, last, last_next: displacements of frames 0, 1, L and L + 1 of B samples, equal
            shapes [B, ...] (e.g. [B, 2, H, W], pixels).

    Returns:
        [B]: sample b's mean |last - first| + mean |(last_next - last) - (first_next - first)|.

    Example:
        >>> a = torch.zeros(2, 2, 4, 4)
        >>> off = torch.tensor([3.0, 0.0]).view(2, 1, 1, 1)     # sample 0 ends 3 px off, moving as it began
        >>> loop_losses(a, a + 1, a + off, a + off + 1).tolist()
        [3.0, 0.0]
    """
    shapes = {tuple(x.shape) for x in (first, first_next, last, last_next)}
    if len(shapes) != 1 or first.ndim < 1:
        raise ValueError(f"first, first_next, last and last_next must share one shape [B, ...], got {sorted(shapes)}")
    position = (last - first).abs().reshape(len(first), -1).mean(1)
    velocity = ((last_next - last) - (first_next - first)).abs().reshape(len(first), -1).mean(1)
    return position + velocity


def loop_amplitude(loop: torch.Tensor) -> torch.Tensor:
    """How much each sample's loop moves: A = mean |F_t - mean_t F| over its frames, pixels and axes.

    Args:
        loop: frames 0 .. L - 1 of B samples, [B, L, ...] (e.g. [B, L, 2, H, W], pixels).

    Returns:
        [B], in the units of ``loop``.

    Example:
        >>> t = torch.tensor([0.0, 1.0, 0.0, -1.0]).view(1, 4, 1)
        >>> loop_amplitude(torch.cat([t, 3 * t])).tolist()
        [0.5, 1.5]
    """
    if loop.ndim < 3:
        raise ValueError(f"loop must be [B, L, ...], got {tuple(loop.shape)}")
    return (loop - loop.mean(1, keepdim=True)).abs().flatten(1).mean(1)


def relative_loop_losses(losses: torch.Tensor, amplitude: torch.Tensor, eps: float = AMPLITUDE_EPS
                         ) -> torch.Tensor:
    """Scale-invariant loop losses: L_g sg(A) / (A + eps), per sample.

    L_g / A does not change when a motion and its seam gap are scaled together, so shrinking the motion no
    longer lowers it; the factor sg(A) (A with its gradient stopped) keeps the value at L_g and its units
    (pixels), so the guidance weight means what it means for Eq. 6. The gradient is
    grad L_g - L_g / (A + eps) grad A: Eq. 6's pull on the seam plus a push to keep the motion's amplitude, in
    proportion to how open the seam still is.

    Args:
        losses: [B], :func:`loop_losses` of B samples.
        amplitude: [B], :func:`loop_amplitude` of the same samples' loops (same units as the displacements).
        eps: added to A (:data:`AMPLITUDE_EPS`).

    Returns:
        [B], equal in value to ``losses`` (up to eps).

    Example:
        >>> g, a = torch.tensor([2.0], requires_grad=True), torch.tensor([4.0], requires_grad=True)
        >>> relative_loop_losses(g, a, eps=0.0).sum().backward()
        >>> g.grad.tolist(), a.grad.tolist()     # d/dA = -g / A
        ([1.0], [-0.5])
    """
    if losses.shape != amplitude.shape:
        raise ValueError(f"losses and amplitude must share one shape [B], got {tuple(losses.shape)} and "
                         f"{tuple(amplitude.shape)}")
    return losses * amplitude.detach() / (amplitude + eps)


def _alpha_bars(scheduler, timestep) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha_bar at ``timestep`` and at the timestep the scheduler's step lands on."""
    t = int(timestep)
    if hasattr(scheduler, "previous_timestep"):
        prev = int(scheduler.previous_timestep(t))
    else:
        prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod
    final = getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0))
    return alphas[t].float(), (alphas[prev] if prev >= 0 else final).float()


def renoise(sample: torch.Tensor, alpha_bar: torch.Tensor | float, alpha_bar_prev: torch.Tensor | float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Take z_{n-1} (noise level alpha_bar_prev) back to level alpha_bar: the forward process q(z_n | z_{n-1}).

    z_n = sqrt(a) z_{n-1} + sqrt(1 - a) noise, a = alpha_bar / alpha_bar_prev.
    """
    from diffusers.utils.torch_utils import randn_tensor

    a = torch.as_tensor(alpha_bar, dtype=torch.float32) / torch.as_tensor(alpha_bar_prev, dtype=torch.float32)
    a = a.clamp(0.0, 1.0).to(sample.device)
    noise = randn_tensor(tuple(sample.shape), generator=generator, device=sample.device, dtype=sample.dtype)
    return a.sqrt().to(sample.dtype) * sample + (1 - a).sqrt().to(sample.dtype) * noise


@dataclass
class LoopGuidance:
    """Motion self-guidance towards a seamless loop; pass it to a sampler (GID's or LVMM's).

    Attributes:
        weight: u, the guidance weight at the paper's resolution (GID: 200), scaled by the sampler to the
            model's resolution (module docstring); None = the family's measured default.
        recurrences: passes per denoising step, with re-noising between them (GID: 2; 1 = no recurrence).
        cfg_w: classifier-free guidance weight w used while looping (GID: 1.75); the sampler uses it instead
            of its own guidance scale. None = keep the sampler's.
        num_frames: L, the frames of the loop (frames 0 .. L - 1 play, frame L must be frame 0 again);
            None = the model's own period T (GID) or trajectory (LVMM).
        through_denoiser: differentiate through the denoiser (universal guidance) or treat eps as constant.
        checkpoint_denoiser: recompute the denoiser's activations in the backward pass (saves memory).
        relative: guide with the scale-invariant loss L_g sg(A) / A (:func:`relative_loop_losses`; shrinking
            the motion does not lower it) instead of the paper's plain Eq. 6 (False); None = the family's
            measured default (``gid.LOOP_RELATIVE`` True, ``lvmm.LOOP_RELATIVE`` False).
    """

    weight: float | None = None
    recurrences: int = 2
    cfg_w: float | None = 1.75
    num_frames: int | None = None
    through_denoiser: bool = True
    checkpoint_denoiser: bool = True
    relative: bool | None = None

    def __post_init__(self) -> None:
        if self.weight is not None and not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if int(self.recurrences) < 1:
            raise ValueError(f"recurrences must be >= 1, got {self.recurrences}")
        if self.num_frames is not None and int(self.num_frames) < 3:
            raise ValueError(f"num_frames must be >= 3, got {self.num_frames}")

    @staticmethod
    def guidance_scale(loop_guidance: LoopGuidance | None, scale: float, name: str) -> float:
        """The classifier-free guidance scale a sampler uses: ``loop_guidance.cfg_w`` when it sets one, else
        ``scale``; ``name`` is the sampler's argument, for the error when the result is negative."""
        if loop_guidance is not None and loop_guidance.cfg_w is not None:
            scale = float(loop_guidance.cfg_w)
        if scale < 0:
            raise ValueError(f"{name} must be >= 0, got {scale}")
        return scale

    def with_defaults(self, weight: float, relative: bool) -> LoopGuidance:
        """This guidance with the family's defaults for whichever of ``weight`` and ``relative`` are None."""
        return replace(self, weight=float(weight) if self.weight is None else self.weight,
                       relative=bool(relative) if self.relative is None else self.relative)

    def endpoint_times(self, period: int) -> torch.Tensor:
        """Frame times whose displacement the loss needs: (0, 1, L, L + 1), L = num_frames or ``period``;
        with ``relative`` all of 0, 1 .. L + 1 (the amplitude needs the loop's frames).

        Frames L and L + 1 come after the loop's last (they must be frames 0 and 1 again); see
        :func:`loop_loss`."""
        length = int(self.num_frames or period)
        if self.relative:
            return torch.arange(length + 2, dtype=torch.float64)
        return torch.tensor([0.0, 1.0, float(length), length + 1.0], dtype=torch.float64)

    def sample_losses(self, ends: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """[B] loop losses of B samples from a decoder's output: :func:`loop_losses` of its first four
        elements (frames 0, 1, L, L + 1), made relative (:func:`relative_loop_losses`) with ``relative``,
        which needs the fifth, the loop's frames [B, L, ...]."""
        losses = loop_losses(*ends[:4])
        if not self.relative:
            return losses
        if len(ends) < 5:
            raise ValueError("LoopGuidance.relative needs the loop's frames 0 .. L - 1 from decode_to_endpoints "
                             "(a fifth element, [B, L, ...])")
        return relative_loop_losses(losses, loop_amplitude(ends[4]))

    def guided_noise(self, sample: torch.Tensor, timestep: torch.Tensor, alpha_bar: torch.Tensor | float,
                     eps_fn: EpsFn, decode_to_endpoints: EndpointFn, scale: float = 1.0,
                     check: CheckFn | None = None) -> tuple[torch.Tensor, float]:
        """eps_hat = eps + u s sigma grad_z L_g at one noise level (steps 1-5 of the module docstring).

        Args:
            sample: z_n, any shape the caller's functions accept.
            timestep: n, passed to ``eps_fn``.
            alpha_bar: alpha_bar_n.
            eps_fn: (z, t) -> eps, classifier-free guidance included.
            decode_to_endpoints: x0 -> (first, first_next, last, last_next) displacements of frames
                (0, 1, L, L + 1) of the B samples in x0, each [B, ...], differentiable (with ``relative``,
                then the loop's frames 0 .. L - 1 [B, L, ...]).
            scale: s, the family's resolution scale (1 at the paper's resolution).
            check: called between the forward pass and the backward pass; what it raises (an interrupt)
                stops the guidance there.

        Returns:
            (eps_hat detached, the loss L_g before the update: the sum of the B samples' own losses, whose
            gradient guides each sample as if it were alone).
        """
        if self.weight is None:
            raise ValueError("LoopGuidance.weight is None (the family's default): the sampler resolves it with "
                             "with_defaults before guiding")
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float32, device=sample.device)
        sigma = (1 - alpha_bar).sqrt()
        with torch.enable_grad():
            z = sample.detach().requires_grad_(True)
            if self.through_denoiser:
                if self.checkpoint_denoiser:
                    eps = torch.utils.checkpoint.checkpoint(eps_fn, z, timestep, use_reentrant=False)
                else:
                    eps = eps_fn(z, timestep)
            else:
                with torch.no_grad():
                    eps = eps_fn(sample, timestep)
            x0 = (z - sigma.to(z.dtype) * eps) / alpha_bar.sqrt().to(z.dtype)
            loss = self.sample_losses(decode_to_endpoints(x0)).sum()
            if check is not None:
                check()
            (grad,) = torch.autograd.grad(loss, z)
        eps_hat = eps.detach() + (float(self.weight) * float(scale) * sigma).to(grad.dtype) * grad
        return eps_hat, float(loss.detach())

    def step(self, scheduler, sample: torch.Tensor, index: int, eps_fn: EpsFn, decode_to_endpoints: EndpointFn,
             generator: torch.Generator | None = None, scale: float = 1.0, check: CheckFn | None = None,
             **step_kwargs) -> tuple[torch.Tensor, float]:
        """One guided denoising step with self-recurrence, for any diffusers scheduler with ``alphas_cumprod``.

        Args:
            scheduler: e.g. DDIMScheduler after ``set_timesteps``.
            sample: z_n.
            index: position of n in ``scheduler.timesteps``.
            eps_fn, decode_to_endpoints, scale: see :meth:`guided_noise`.
            generator: for the re-noising (and stochastic schedulers); a list of B generators draws each
                sample's noise from its own (``sample`` [B, ...]), as diffusers' ``randn_tensor`` does.
            check: called before every pass and between each pass's forward and backward (a sampler passes
                one that calls its progress callback, which raises on a user's interrupt).
            step_kwargs: passed to ``scheduler.step`` (e.g. eta).

        Returns:
            (z_{n-1}, the loop loss of the last pass, summed over the batch).
        """
        timestep = scheduler.timesteps[index]
        alpha_bar, alpha_bar_prev = _alpha_bars(scheduler, timestep)
        loss = float("nan")
        for r in range(int(self.recurrences)):
            if check is not None:
                check()
            eps_hat, loss = self.guided_noise(sample, timestep, alpha_bar, eps_fn, decode_to_endpoints, scale,
                                              check)
            prev = scheduler.step(eps_hat, timestep, sample, generator=generator, **step_kwargs).prev_sample
            if r + 1 < int(self.recurrences):
                sample = renoise(prev, alpha_bar, alpha_bar_prev, generator)
        return prev, loss

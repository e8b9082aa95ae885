"""The noise schedule of the pack's diffusion models and the diffusers schedulers built from it.

:class:`DiffusionConfig` is the one schedule config (GID and LVMM configs hold one each, with their own defaults);
:func:`ddpm_scheduler` adds noise in training, :func:`ddim_scheduler` samples.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import check_int

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass
class DiffusionConfig:
    """A discrete noise schedule over ``num_train_timesteps`` steps (diffusers' beta schedules).

    The default is LDM's (scaled-linear betas 0.00085 .. 0.012 over 1000 steps, GID); LVMM uses the cosine
    schedule (``squaredcos_cap_v2``, where ``beta_start`` / ``beta_end`` are unused).
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"

    def validate(self) -> None:
        """ValueError when the schedule cannot be built."""
        check_int("diffusion.num_train_timesteps", self.num_train_timesteps, 2, 10_000)
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"diffusion.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, "
                             f"got {self.beta_schedule!r}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(f"diffusion betas must satisfy 0 < beta_start <= beta_end < 1, got "
                             f"{self.beta_start} .. {self.beta_end}")


def _betas(schedule: DiffusionConfig) -> dict:
    return {"num_train_timesteps": schedule.num_train_timesteps, "beta_start": schedule.beta_start,
            "beta_end": schedule.beta_end, "beta_schedule": schedule.beta_schedule, "clip_sample": False}


def ddpm_scheduler(schedule: DiffusionConfig):
    """diffusers DDPMScheduler with this schedule (``add_noise`` in training); no x0 clipping (latents, flows)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_betas(schedule))


def ddim_steps_offset(num_train_timesteps: int, num_steps: int) -> int:
    """Stable Diffusion's DDIM offset (1) unless it would push the first timestep past the schedule's last.

    "leading" spacing puts step i at ``i * (T // n) + offset``; with n = T steps the offset 1 asks for timestep T,
    which does not exist (diffusers then fails with an IndexError), so that case uses offset 0.

    Example:
        >>> ddim_steps_offset(1000, 50), ddim_steps_offset(1000, 999), ddim_steps_offset(1000, 1000)
        (1, 1, 0)
    """
    top = (int(num_steps) - 1) * (int(num_train_timesteps) // max(int(num_steps), 1)) + 1
    return 1 if top <= num_train_timesteps - 1 else 0


def ddim_scheduler(schedule: DiffusionConfig, num_steps: int | None = None, device=None):
    """diffusers DDIMScheduler with this schedule: deterministic (eta = 0 at ``step``), "leading" spacing with
    offset 1 and alpha_prod at t = -1 taken from the schedule (``set_alpha_to_one=False``), as Stable Diffusion.

    With ``num_steps`` (1 .. ``num_train_timesteps``), the offset fits that number of steps
    (:func:`ddim_steps_offset`) and ``set_timesteps(num_steps)`` is applied.
    """
    from diffusers import DDIMScheduler

    offset = 1 if num_steps is None else ddim_steps_offset(schedule.num_train_timesteps, num_steps)
    scheduler = DDIMScheduler(**_betas(schedule), set_alpha_to_one=False, steps_offset=offset,
                              timestep_spacing="leading")
    if num_steps is not None:
        scheduler.set_timesteps(int(num_steps), device=device)
    return scheduler

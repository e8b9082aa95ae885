"""diffusers schedulers from a family's noise-schedule config (GID and LVMM share the construction).

A schedule config is any object with ``num_train_timesteps``, ``beta_start``, ``beta_end`` and ``beta_schedule``
(``models.gid.config.DiffusionConfig``, ``models.lvmm.config.DiffusionConfig``).
"""
from __future__ import annotations


def _betas(schedule) -> dict:
    return {"num_train_timesteps": schedule.num_train_timesteps, "beta_start": schedule.beta_start,
            "beta_end": schedule.beta_end, "beta_schedule": schedule.beta_schedule, "clip_sample": False}


def ddpm_scheduler(schedule):
    """diffusers DDPMScheduler with this schedule (``add_noise`` in training); no x0 clipping (latents, flows)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_betas(schedule))


def ddim_scheduler(schedule):
    """diffusers DDIMScheduler with this schedule: deterministic (eta = 0 at ``step``), "leading" spacing with
    offset 1 and alpha_prod at t = -1 taken from the schedule (``set_alpha_to_one=False``), as Stable Diffusion."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**_betas(schedule), set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")

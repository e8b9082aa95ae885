"""Small adapters that let the phased sampler drive any diffusers scheduler with noise it chooses.

* ``resolve_scheduler``: a scheduler instance (deep-copied, never mutated) or a zero-argument factory.
* ``coefficients``: (a_t, s_t) with x_t = a_t x_0 + s_t eps in the scheduler's state space, read through
  ``add_noise`` (VP schedulers: a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar); Euler-type: a = 1, s = sigma).
* ``to_eps``: a model output in the scheduler's ``prediction_type`` (epsilon, v_prediction, sample) as eps.
* ``scale_input``: ``scale_model_input`` at a given step index, without touching the caller's scheduler.
* ``step_with_noise``: one ``scheduler.step`` whose stochastic term uses a given noise tensor. Schedulers whose
  ``step`` takes ``variance_noise`` (DDIM with eta > 0, DPM-Solver++ SDE) get it as an argument. The others that
  draw their noise with diffusers' ``randn_tensor`` (DDPM, Euler ancestral, LCM, ...) get it by replacing their
  module's ``randn_tensor`` for the duration of the call (restored in ``finally``; the first draw of the right
  shape returns the given noise, any other draw falls back to a seeded generator). Deterministic schedulers
  ignore the noise.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
from collections.abc import Iterator

import torch


def resolve_scheduler(scheduler_or_factory, num_inference_steps: int, device=None):
    """A private scheduler with ``set_timesteps(num_inference_steps)`` applied.

    Args:
        scheduler_or_factory: a diffusers scheduler (deep-copied) or a callable returning a new one.
        num_inference_steps: T >= 1.
        device: where the timesteps live.

    Returns:
        the scheduler; ``len(scheduler.timesteps)`` is the number of denoiser calls of one full pass.
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    if hasattr(scheduler_or_factory, "step") and hasattr(scheduler_or_factory, "set_timesteps"):
        scheduler = copy.deepcopy(scheduler_or_factory)
    elif callable(scheduler_or_factory):
        scheduler = scheduler_or_factory()
        if not (hasattr(scheduler, "step") and hasattr(scheduler, "set_timesteps")):
            raise TypeError(f"the scheduler factory returned {type(scheduler).__name__}, not a diffusers scheduler")
    else:
        raise TypeError(f"expected a diffusers scheduler or a factory, got {type(scheduler_or_factory).__name__}")
    scheduler.set_timesteps(num_inference_steps, device=device)
    return scheduler


def _timestep(scheduler, index: int) -> torch.Tensor:
    return scheduler.timesteps[index]


def _at_index(scheduler, index: int):
    """A shallow copy of ``scheduler`` whose step index is ``index`` (for sigma-based schedulers)."""
    view = copy.copy(scheduler)
    if hasattr(view, "_step_index"):
        view._step_index = index
    return view


def coefficients(scheduler, index: int) -> tuple[float, float]:
    """(a, s) with ``add_noise(x0, eps, t_index) = a * x0 + s * eps``.

    Example:
        >>> from diffusers import DDIMScheduler
        >>> sch = DDIMScheduler()
        >>> sch.set_timesteps(10)
        >>> a, s = coefficients(sch, 0)
        >>> abs(a * a + s * s - 1.0) < 1e-6
        True
    """
    t = _timestep(scheduler, index).reshape(1)
    one, zero = torch.ones(1), torch.zeros(1)
    a = float(scheduler.add_noise(one, zero, t.cpu()).reshape(-1)[0])
    s = float(scheduler.add_noise(zero, one, t.cpu()).reshape(-1)[0])
    return a, s


def add_noise_at(scheduler, x0: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """``a_t x0 + s_t noise`` at the scheduler's step ``index`` (any tensor shapes that broadcast)."""
    a, s = coefficients(scheduler, index)
    return a * x0 + s * noise


def scale_input(scheduler, sample: torch.Tensor, index: int) -> torch.Tensor:
    """``scheduler.scale_model_input(sample, t_index)``.

    Called on the scheduler itself when its step counter is at ``index`` (or not started), as in a normal
    sampling loop (sigma schedulers note the call); otherwise on a shallow copy positioned at ``index``, so
    that the caller's scheduler is not moved.
    """
    t = _timestep(scheduler, index)
    if getattr(scheduler, "_step_index", None) in (None, index):
        return scheduler.scale_model_input(sample, t)
    return _at_index(scheduler, index).scale_model_input(sample, t)


def to_eps(scheduler, model_output: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
    """The model's noise estimate eps in state space from its output in ``config.prediction_type``.

    Args:
        model_output: what the denoiser returned for ``sample`` at step ``index``.
        sample: the (unscaled) state x_t the denoiser saw (after ``scale_model_input``).

    With x_t = a x0 + s eps, r = sqrt(a^2 + s^2) and the model seeing x_t / r (VP: r = 1; Euler: the
    ``scale_model_input`` factor 1 / sqrt(sigma^2 + 1)): v = (a eps - s x0) / r, so eps = (a v + s x_t / r) / r;
    sample prediction: eps = (x_t - a x0) / s.

    Example:
        >>> import torch
        >>> from diffusers import DDIMScheduler
        >>> sch = DDIMScheduler(prediction_type="v_prediction")
        >>> sch.set_timesteps(10)
        >>> a, s = coefficients(sch, 3)
        >>> x0, eps = torch.randn(4), torch.randn(4)
        >>> torch.allclose(to_eps(sch, a * eps - s * x0, a * x0 + s * eps, 3), eps, atol=1e-5)
        True
    """
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "epsilon":
        return model_output
    a, s = coefficients(scheduler, index)
    if kind == "v_prediction":
        r2 = a * a + s * s
        return (a * model_output + s * sample / r2 ** 0.5) / r2 ** 0.5
    if kind == "sample":
        if s == 0.0:
            raise ValueError("cannot recover eps from a sample prediction at zero noise")
        return (sample - a * model_output) / s
    raise NotImplementedError(f"prediction_type {kind!r} is not supported")


@functools.lru_cache(maxsize=64)
def _step_parameters_of(cls: type) -> frozenset:
    return frozenset(inspect.signature(cls.step).parameters)


def _step_parameters(scheduler) -> frozenset:
    return _step_parameters_of(type(scheduler))


@contextlib.contextmanager
def _injected_randn(module, noise: torch.Tensor, fallback: torch.Generator) -> Iterator[None]:
    original = module.randn_tensor
    used = [False]

    def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None, **kwargs):
        if not used[0] and tuple(shape) == tuple(noise.shape):
            used[0] = True
            return noise.to(device=device if device is not None else noise.device,
                            dtype=dtype if dtype is not None else noise.dtype)
        return original(shape, generator=fallback, device=device, dtype=dtype, layout=layout, **kwargs)

    module.randn_tensor = randn_tensor
    try:
        yield
    finally:
        module.randn_tensor = original


def step_with_noise(scheduler, model_output: torch.Tensor, index: int, sample: torch.Tensor,
                    noise: torch.Tensor | None, step_kwargs: dict | None = None,
                    fallback: torch.Generator | None = None) -> torch.Tensor:
    """``scheduler.step(...).prev_sample`` with the stochastic term drawn as ``noise``.

    Args:
        model_output: the denoiser output for ``sample`` at step ``index``.
        index: the step index (the scheduler's own step counter must agree, as in a normal loop).
        noise: standard normal tensor shaped like ``sample`` (or None: the scheduler draws its own).
        step_kwargs: extra ``step`` arguments, e.g. ``{"eta": 0.5}`` for DDIM.
        fallback: generator for draws that cannot take ``noise`` (other shapes, second draws).
    """
    kwargs = dict(step_kwargs or {})
    kwargs["return_dict"] = True
    t = _timestep(scheduler, index)
    params = _step_parameters(scheduler)
    if noise is None:
        return scheduler.step(model_output, t, sample, **kwargs).prev_sample
    if "variance_noise" in params:
        return scheduler.step(model_output, t, sample, variance_noise=noise, **kwargs).prev_sample
    module = sys.modules.get(type(scheduler).__module__)
    if "generator" in params:
        kwargs["generator"] = fallback
    if module is not None and hasattr(module, "randn_tensor"):
        with _injected_randn(module, noise, fallback):
            return scheduler.step(model_output, t, sample, **kwargs).prev_sample
    return scheduler.step(model_output, t, sample, **kwargs).prev_sample

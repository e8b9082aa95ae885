"""The long-animation paper's additions to Stable Video Diffusion (Controllable Longer Image Animation)."""

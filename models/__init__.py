"""Architectures, checkpoint formats and samplers, one folder per family. No ComfyUI imports."""

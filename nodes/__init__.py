"""ComfyUI adapters: schemas, type conversion, progress, interrupts, model management."""

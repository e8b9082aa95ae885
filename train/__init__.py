"""Command-line training of motion priors from a user's videos. No ComfyUI imports."""

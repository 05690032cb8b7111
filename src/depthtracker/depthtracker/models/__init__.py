"""Model packages: one folder per model (config, model, heads, losses, postprocess)."""

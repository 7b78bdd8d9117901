"""Fitting a GOP's model to its frames: the optimiser loop and the pixel sampler (the
native C kernel it steps with is in native/)."""

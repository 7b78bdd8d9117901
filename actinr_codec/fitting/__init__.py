"""Fitting a GOP's model to its frames: the optimiser loop, the pixel sampler and the
native C kernel."""

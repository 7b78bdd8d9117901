"""Quantization: one step per tensor from the output's sensitivity, rounding to symbols."""

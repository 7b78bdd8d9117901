"""The ActINR model of a GOP: configuration, tiling, network, rendering, and the format's
model layer (schema.py, frequencies.py)."""

"""The encoder and decoder pipeline: settings and presets, GOPs, coding a GOP, decoding a
file, output times."""

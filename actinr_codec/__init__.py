"""actinr: ActINR video codec: model, fitting, quantization and rendering."""

__version__ = "0.1.0"

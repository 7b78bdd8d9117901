"""The .anr bitstream: writes a fitted video's quantized GOP tensors to a self-describing,
seekable, checksummed file and reads them back. Depends on numpy, constriction and
zstandard only (never torch or actinr_codec). The format is described in docs/bitstream.md.
"""

from .container import AnrReader, decode_file, encode_file, write_anr
from .errors import BitstreamError
from .header import VERSION as FORMAT_VERSION
from .records import COLOURS, GopIndexEntry, GOPRecord, TensorRecord, VideoInfo
from .stats import TensorStats, measure, tensor_stats

__all__ = [
    "AnrReader", "BitstreamError", "COLOURS", "FORMAT_VERSION", "GOPRecord", "GopIndexEntry",
    "TensorRecord", "TensorStats", "VideoInfo", "decode_file", "encode_file", "measure",
    "tensor_stats", "write_anr",
]

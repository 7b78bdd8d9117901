"""The one exception type the bitstream package raises for unusable files or inputs."""


class BitstreamError(ValueError):
    """A file (or a record about to be written) breaks the .anr format or its limits.

    The message is one line naming the problem, e.g. "GOP 2 CRC mismatch".
    """

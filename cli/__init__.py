"""Command-line interface of the actinr video codec."""

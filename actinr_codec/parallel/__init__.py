"""Fitting a video's GOP chain in parallel: segments, local processes, a Dask cluster."""

"""Video files in and out, through PyAV."""

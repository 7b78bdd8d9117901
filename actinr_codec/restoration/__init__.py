"""Restoration while encoding: noise estimation, denoising settings, inpainting masks."""

"""Shared blocks of the detector plugins: the anomalib adapter and the reconstruction-error detector."""

"""Shared blocks of the generator plugins: the conv backbone, latent heads, memory, GAN networks and training."""

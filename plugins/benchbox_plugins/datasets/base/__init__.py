"""Shared blocks of the dataset plugins: folder layouts and readers, IDX files, the image cache, the one-class protocol."""

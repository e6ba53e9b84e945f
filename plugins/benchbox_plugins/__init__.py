"""benchbox's first-party plugins. Reached only through the ``benchbox.*`` entry-point groups."""

"""benchbox: does learned latent augmentation beat no augmentation and random dz?

timm-style entry points::

    import benchbox
    benchbox.list_plugins("detectors")
    det = benchbox.create_detector("transformer", epochs=5)
"""

from .registry import (  # noqa: F401
    create,
    create_dataset,
    create_detector,
    create_generator,
    create_policy,
    list_plugins,
)

__version__ = "0.1.0"

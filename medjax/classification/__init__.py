"""Image classification (2D and 3D): CNN models, metrics with bootstrap CIs, figures."""

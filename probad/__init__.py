"""probad: probabilistic programming and inference on its own autodiff."""
__version__ = "0.1.0"

"""reproduce: a reproducibility harness for adversarial-training research."""

__version__ = "0.1.0"

"""Optimizers: Keras' Adam and AdamW with one fused TensorFlow kernel per variable update."""

from keras_asc.optimizers.fused_adam import FusedAdam
from keras_asc.optimizers.fused_adam_w import FusedAdamW

__all__ = ["FusedAdam", "FusedAdamW"]

"""Losses: the inverse contrastive loss over device labels."""

from keras_asc.losses.inverse_contrastive_loss import InverseContrastiveLoss
from keras_asc.losses.inverse_contrastive_loss import inverse_contrastive_loss

__all__ = ["InverseContrastiveLoss", "inverse_contrastive_loss"]

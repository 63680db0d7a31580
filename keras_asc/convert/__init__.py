"""PyTorch PaSST checkpoints → keras-asc weights (NumPy only; `.pt` read without torch)."""

from keras_asc.convert.passt_checkpoint import checkpoint_geometry
from keras_asc.convert.passt_checkpoint import load_passt_state_dict
from keras_asc.convert.passt_checkpoint import passt_weight_table

__all__ = ["checkpoint_geometry", "load_passt_state_dict", "passt_weight_table"]

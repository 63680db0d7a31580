"""Keras layers of keras-asc: the PaSST frontend and the PaSST building blocks.

One public layer per module, named after its class. Importing this package registers every
layer for `keras.saving.load_model`.
"""

from keras_asc.layers.class_tokens import ClassTokens
from keras_asc.layers.fast_layer_normalization import FastLayerNormalization
from keras_asc.layers.fused_dense import FusedDense
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.layers.multi_head_self_attention import MultiHeadSelfAttention
from keras_asc.layers.patch_embedding import PatchEmbedding
from keras_asc.layers.patch_position_embedding import PatchPositionEmbedding
from keras_asc.layers.structured_patchout import StructuredPatchout
from keras_asc.layers.transformer_block import TransformerBlock
from keras_asc.layers.unstructured_patchout import UnstructuredPatchout

__all__ = [
    "ClassTokens",
    "FastLayerNormalization",
    "FusedDense",
    "KaldiMelSpectrogram",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "PatchPositionEmbedding",
    "StructuredPatchout",
    "TransformerBlock",
    "UnstructuredPatchout",
]

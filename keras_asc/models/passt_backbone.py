"""PaSST backbone: mel spectrogram → patch tokens → transformer → pooled embedding."""

import copy

import keras

from asc_core.errors import UserError
from keras_asc.layers._utils import as_pair
from keras_asc.layers.class_tokens import ClassTokens
from keras_asc.layers.fast_layer_normalization import FastLayerNormalization
from keras_asc.layers.patch_embedding import PatchEmbedding
from keras_asc.layers.patch_position_embedding import PatchPositionEmbedding
from keras_asc.layers.structured_patchout import StructuredPatchout
from keras_asc.layers.transformer_block import TransformerBlock
from keras_asc.layers.unstructured_patchout import UnstructuredPatchout
from keras_asc.models.passt_presets import passt_presets
from keras_asc.serialization import deserialize_entries


def get_preset(name):
    """The preset dict of `name` (a copy), or a UserError listing the known names."""
    if name not in passt_presets:
        raise UserError(
            f"unknown PaSST preset {name!r}; expected one of: {', '.join(sorted(passt_presets))}"
        )
    return copy.deepcopy(passt_presets[name])


def restore_dtype_policy(model, dtype):
    """Sets `dtype` (if given) on a functional `model`, whose `__init__` drops it.

    So get_config (and with it from_config, .keras files and clone_model) rebuilds the model
    as trained.
    """
    if dtype is not None:
        model.dtype_policy = dtype


def _sub_seed(seed, offset):
    return None if seed is None else seed + offset


@keras.saving.register_keras_serializable(package="keras_asc")
class PaSSTBackbone(keras.Model):
    """Patchout faSt Spectrogram Transformer (Koutini et al., 2022), without a head.

    A functional model: overlapping 16×16 patches of the mel spectrogram (`PatchEmbedding`),
    separate frequency and time position embeddings (`PatchPositionEmbedding`), structured
    then unstructured patchout in training, cls and dist tokens (`ClassTokens`), `num_layers`
    pre-norm transformer blocks and a final LayerNorm. It mirrors
    `hear21passt.models.passt.PaSST.forward_features` (distilled), so official checkpoints
    convert one-to-one (`keras_asc.models.passt_checkpoint`).

    Args:
        hidden_dim: int. Token width `D` (PaSST-S: 768).
        num_layers: int. Transformer blocks (PaSST-S: 12, PaSST-L: 7).
        num_heads: int. Attention heads (PaSST-S: 12).
        intermediate_dim: int. MLP hidden size (PaSST-S: 3072).
        patch_size: int or pair. Patch size (16).
        stride: int or pair `(freq, time)`. Patch hop (10; released: 10, 12, 14, 16).
        num_mels: int. Mel bins of the input (128).
        max_frames: int. The original `input_tdim`: the time embedding covers
            `max_frames // stride` patch columns (998 → 99 = 10 s at stride 10).
        use_qkv_bias: bool. Bias on the fused qkv projections (`True`).
        layer_norm_epsilon: float. Epsilon of all LayerNorms here (1e-6).
        frequency_patchout: int. Patch rows dropped in training (`s_patchout_f`; TAU22: 6).
        time_patchout: int. Patch columns dropped in training (`s_patchout_t`).
        unstructured_patchout: int. Sequence positions dropped in training (`u_patchout`).
        random_time_offset: bool. Training reads the time embedding at a random offset
            (one per batch) as kkoutini/PaSST does; `False` always starts at 0 as hear21passt.
        seed: int or None. Seed of the patchout and offset draws.
        dtype: dtype or `keras.DTypePolicy` of the layers (e.g. `"mixed_bfloat16"`).

    Input shape:
        mel `[B, num_mels, frames]`, `frames >= 16`; 1 s at 32 kHz is `[B, 128, 100]`.

    Output:
        dict with `"embedding"` `[B, D]`, the mean of the cls and dist outputs after the final
        norm (PaSST's `features`), and `"tokens"` `[B, 2 + N, D]`, the whole normed sequence
        (cls, dist, then the N patches in frequency-major order). At inference
        `N = F' * T'` (1 s, stride 10: 12 × 9 = 108); training patchout makes it smaller.

    Example:
    ```python
    backbone = PaSSTBackbone.from_preset("passt_tiny")
    outputs = backbone(np.zeros((2, 128, 100), "float32"))
    outputs["embedding"].shape  # (2, 64)
    ```
    """

    def __init__(
        self,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        intermediate_dim=3072,
        patch_size=16,
        stride=10,
        num_mels=128,
        max_frames=998,
        use_qkv_bias=True,
        layer_norm_epsilon=1e-6,
        frequency_patchout=0,
        time_patchout=0,
        unstructured_patchout=0,
        random_time_offset=True,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        kwargs.setdefault("name", "passt_backbone")
        kernel = as_pair(patch_size, "patch_size")
        strides = as_pair(stride, "stride")
        # The original sizes its embeddings as input // stride (PatchEmbed.grid_size).
        frequency_positions = num_mels // strides[0]
        time_positions = max_frames // strides[1]
        frequency_rows = (num_mels - kernel[0]) // strides[0] + 1
        if num_mels < kernel[0] or frequency_rows != frequency_positions:
            raise UserError(
                f"num_mels={num_mels} with patch_size={patch_size}, stride={stride} gives "
                f"{frequency_rows} patch rows but {frequency_positions} frequency positions; "
                f"expected num_mels where both agree (e.g. 128)"
            )
        if time_positions < 1:
            raise UserError(f"max_frames={max_frames}: expected at least one stride ({stride})")

        # === Layers ===
        self.patch_embedding = PatchEmbedding(
            hidden_dim, patch_size=patch_size, stride=stride, dtype=dtype, name="patch_embedding"
        )
        self.position_embedding = PatchPositionEmbedding(
            frequency_positions,
            time_positions,
            random_time_offset=random_time_offset,
            seed=_sub_seed(seed, 0),
            dtype=dtype,
            name="position_embedding",
        )
        self.structured_patchout = StructuredPatchout(
            frequency=frequency_patchout,
            time=time_patchout,
            seed=_sub_seed(seed, 1),
            dtype=dtype,
            name="structured_patchout",
        )
        self.flatten_patches = keras.layers.Reshape(
            (-1, hidden_dim), dtype=dtype, name="flatten_patches"
        )
        self.unstructured_patchout = UnstructuredPatchout(
            unstructured_patchout,
            seed=_sub_seed(seed, 2),
            dtype=dtype,
            name="unstructured_patchout",
        )
        self.class_tokens = ClassTokens(dtype=dtype, name="class_tokens")
        self.transformer_layers = [
            TransformerBlock(
                num_heads,
                intermediate_dim,
                use_qkv_bias=use_qkv_bias,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = FastLayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )

        # === Functional Model ===
        mel = keras.Input(shape=(num_mels, None), name="mel")
        x = self.patch_embedding(mel)
        x = self.position_embedding(x)
        x = self.structured_patchout(x)
        # [B, F', T', D] -> [B, F' * T', D], frequency-major like torch's flatten(2).
        x = self.flatten_patches(x)
        x = self.unstructured_patchout(x)
        x = self.class_tokens(x)
        for block in self.transformer_layers:
            x = block(x)
        tokens = self.final_norm(x)
        embedding = (tokens[:, 0] + tokens[:, 1]) / 2
        super().__init__(
            inputs=mel,
            outputs={"embedding": embedding, "tokens": tokens},
            dtype=dtype,
            **kwargs,
        )
        restore_dtype_policy(self, dtype)

        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.patch_size = patch_size
        self.stride = stride
        self.num_mels = num_mels
        self.max_frames = max_frames
        self.use_qkv_bias = use_qkv_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.frequency_patchout = frequency_patchout
        self.time_patchout = time_patchout
        self.unstructured_patchout_count = unstructured_patchout
        self.random_time_offset = random_time_offset
        self.seed = seed

    def get_config(self):
        # Constructor kwargs only (keras-hub Backbone style): from_config rebuilds the graph.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "patch_size": self.patch_size,
            "stride": self.stride,
            "num_mels": self.num_mels,
            "max_frames": self.max_frames,
            "use_qkv_bias": self.use_qkv_bias,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "frequency_patchout": self.frequency_patchout,
            "time_patchout": self.time_patchout,
            "unstructured_patchout": self.unstructured_patchout_count,
            "random_time_offset": self.random_time_offset,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_entries(config, dtype=keras.dtype_policies.deserialize))

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds the architecture of preset `name` (see `passt_presets.py`), random weights.

        `overrides` replace preset kwargs, e.g. `frequency_patchout=6` for TAU22 training.
        Official weights come from `scripts/convert_passt_checkpoint.py`.
        """
        return cls(**{**get_preset(name)["backbone"], **overrides})

"""PaSST's classification and distillation tokens, prepended to the patch sequence."""

import keras

from keras_asc.layers._utils import trunc_normal


@keras.saving.register_keras_serializable(package="keras_asc")
class ClassTokens(keras.layers.Layer):
    """Prepends the learned cls and dist tokens, each with its own position embedding.

    `[cls + pos[0], dist + pos[1], patches...]`, as PaSST (DeiT-style distilled) does after
    patchout. The converter maps `cls_token`, `dist_token` and `new_pos_embed` onto
    `cls_token`, `dist_token` and `token_position_embedding`.

    Input shape:
        `[B, N, D]` patch sequence.

    Output shape:
        `[B, N + 2, D]`.
    """

    def build(self, input_shape):
        dim = input_shape[-1]
        self.cls_token = self.add_weight(
            name="cls_token", shape=(1, 1, dim), initializer=trunc_normal()
        )
        self.dist_token = self.add_weight(
            name="dist_token", shape=(1, 1, dim), initializer=trunc_normal()
        )
        self.token_position_embedding = self.add_weight(
            name="token_position_embedding", shape=(1, 2, dim), initializer=trunc_normal()
        )

    def call(self, inputs):
        tokens = keras.ops.concatenate([self.cls_token, self.dist_token], axis=1)
        tokens = keras.ops.cast(tokens + self.token_position_embedding, inputs.dtype)
        batch = keras.ops.shape(inputs)[0]
        tokens = keras.ops.broadcast_to(tokens, (batch, 2, keras.ops.shape(inputs)[2]))
        return keras.ops.concatenate([tokens, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        batch, size, dim = input_shape
        return (batch, None if size is None else size + 2, dim)

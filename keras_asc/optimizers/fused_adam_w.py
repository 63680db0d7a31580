"""`keras.optimizers.AdamW` whose update of a variable is one fused TensorFlow kernel."""

import keras

from keras_asc.optimizers.fused_adam import fused_adam_update


@keras.saving.register_keras_serializable(package="keras_asc")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with the update of `FusedAdam`.

    The decoupled weight decay stays Keras' own step (before the Adam update); the Adam update
    is TensorFlow's fused `ResourceApplyAdam` kernel (see `FusedAdam`).

    Args:
        Those of `keras.optimizers.AdamW`.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not fused_adam_update(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, learning_rate)

"""`keras.layers.Dense` whose matmul and bias add run as one TensorFlow kernel on token inputs."""

import keras


@keras.saving.register_keras_serializable(package="keras_asc")
class FusedDense(keras.layers.Dense):
    """`keras.layers.Dense` for `[..., D]` inputs whose bias add fuses into the matmul.

    Keras' `Dense` multiplies a `[B, N, D]` input with a batched matmul and adds the bias in a
    separate op. TensorFlow's graph optimiser fuses a bias only into a 2-D `MatMul`
    (`_FusedMatMul`). So here the leading axes are flattened around one 2-D matmul and
    `bias_add`. That made the one-clip PaSST-S eval latency 2–4 % lower (two runs of 160
    interleaved calls on AMD EPYC; faster in 109 and 92 of them) and left the train step as
    it was. An `activation` runs on the 2-D result, before the reshape back, so grappler can
    fuse it too (PaSST's GELU in `mlp_fc1`).

    Same arguments, weights, config and outputs as `Dense` (bit-identical on AMD EPYC; where
    oneDNN sums the 2-D and the batched matmul in other orders, within rounding). Dense's `call`
    runs on other backends, for rank-2 inputs and without a bias. Quantized (`quantize("int8")`,
    as `model.quantize` does), it is a `Dense`: Keras runs `quantized_call`. The kernel is read
    through `self.kernel`, so LoRA and mixed-precision autocasting apply as in `Dense`.

    Input shape:
        `[..., D]`.

    Output shape:
        `[..., units]`.
    """

    def call(self, inputs, training=None):
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) < 3 or self.bias is None:
            return super().call(inputs, training=training)
        import tensorflow as tf

        leading = tf.shape(inputs)[:-1]
        flat = tf.reshape(inputs, (-1, inputs.shape[-1]))
        outputs = tf.nn.bias_add(tf.matmul(flat, self.kernel), self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return tf.reshape(outputs, tf.concat([leading, [self.units]], axis=0))

    def quantize(self, mode=None, type_check=True, **kwargs):
        # Keras refuses to quantize a subclass of Dense, whose `call` it does not know. A
        # quantized layer runs Dense's `quantized_call`, not this `call`, so it is a Dense then,
        # and `model.quantize("int8")` must not skip the PaSST linears.
        return super().quantize(mode, type_check=False, **kwargs)

"""The base of the augmentation layers: the saved counter, pass-through shapes, own-variable
loading, the ``tf.data`` function and the config.

An augmentation is a pure function of its inputs and an explicit example or batch index (the
``tf.data`` placement) wrapped by a layer that numbers examples or batches itself with a saved
int64 counter (the ``train_step`` placement); a subclass names its pure function
(:meth:`AugmentationLayer.augment`) and its config keys, and both placements give the same
result for the same seed and order.
"""

import keras
import tensorflow as tf

from keras_asc.augment import _random


class AugmentationLayer(keras.layers.Layer):
    """A training-only augmentation keyed by a saved example or batch counter.

    Subclasses set:
        counter_name: ``"examples_seen"`` (one index per example, ``[B]``) or
            ``"batches_seen"`` (one index per batch, ``[]``).
        config_keys: the constructor arguments :meth:`get_config` writes, read from the
            attributes of the same name.

    and implement ``augment(*inputs, index, constants=None)``, the pure function applied with
    the layer's parameters (``constants``: copies of the variables, for a ``tf.data`` graph),
    plus ``passthrough(*inputs)`` where the outputs outside training are not the first input.
    """

    counter_name = "examples_seen"
    config_keys = ()

    def __init__(self, seed=0, create_counter=True, **kwargs):
        """``seed``: int, of the draws. ``create_counter``: False where the subclass creates
        other variables first (the weight file stores variables in creation order)."""
        super().__init__(**kwargs)
        self.seed = seed
        if create_counter:
            self.add_counter()

    def add_counter(self):
        """Creates the saved counter (once, where the layer's variable order puts it)."""
        setattr(self, self.counter_name, _random.add_counter(self, self.counter_name))

    def next_index(self, batch):
        """The index of this batch's draws; advances the counter (see ``_random``)."""
        counter = getattr(self, self.counter_name)
        if self.counter_name == "batches_seen":
            return _random.next_batch_index(counter)
        return _random.next_example_indices(counter, batch)

    def augment(self, *inputs, index, constants=None):
        raise NotImplementedError

    def passthrough(self, *inputs):
        return inputs[0] if len(inputs) == 1 else inputs

    def run(self, *inputs, training=None):
        """The body of ``call``: the inputs unchanged outside training, else augmented."""
        if not training:
            return self.passthrough(*inputs)
        return self.augment(*inputs, index=self.next_index(tf.shape(inputs[0])[0]))

    def pipeline_function(self):
        """``fn(*inputs, index)`` for ``tf.data`` (pipeline placement).

        Uses constant copies of the layer's variables (no variables in the dataset graph);
        gives exactly what the layer gives for the same examples in the same order, with
        ``index`` the example's (or batch's) position in the stream (e.g. from
        ``dataset.enumerate()``).
        """
        constants = self.augment_constants()

        def augment(*args):
            *inputs, index = args
            return self.augment(*inputs, index=index, constants=constants)

        return augment

    def augment_constants(self):
        """What :meth:`augment` takes as ``constants`` in the pipeline (default: nothing)."""
        return None

    def build(self, *input_shapes):
        self.built = True

    def compute_output_shape(self, input_shape):
        # Pass-through shape. Keras passes shapes by the names of ``call``'s arguments
        # (``<name>_shape``), so a layer with other inputs or outputs defines its own.
        return input_shape

    def load_own_variables(self, store):
        # A weights file written without this layer (e.g. converted PaSST weights loaded into a
        # model with augmentation) has no entry for it: keep the constructed state.
        if len(store.keys()) == 0:
            return
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in self.config_keys})
        return config

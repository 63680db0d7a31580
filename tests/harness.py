"""Shared test helpers: serialization, layer contracts and tf.data parity (keras-hub's habit).

Every registered ``keras_asc>`` class gets `run_serialization_test` through the table in
``tests/test_serialization_registry.py``; a class registered without an entry there fails that
module's discovery test, so the next custom layer cannot skip its round trip.
"""

import json

import keras
import numpy as np
import tensorflow as tf


def _json(config):
    """A config as it is written to a .keras file (tuples become lists)."""
    return json.loads(json.dumps(config))


def _as_list(value):
    return list(value) if isinstance(value, list | tuple) else [value]


def _outputs(value):
    """Flat list of numpy arrays of a layer/model output (tensor, list or dict)."""
    if isinstance(value, dict):
        return [np.asarray(value[key]) for key in sorted(value)]
    return [np.asarray(v) for v in _as_list(value)]


def _call(obj, inputs):
    """A plain layer takes several inputs as positional arguments, a model as one list."""
    if isinstance(inputs, list) and not isinstance(obj, keras.Model):
        return obj(*inputs)
    return obj(inputs)


def run_serialization_test(instance, inputs, tmp_path):
    """`instance` survives get_config/from_config and a .keras file with identical outputs.

    Args:
        instance: a keras_asc layer or model (called once here if not yet built).
        inputs: numpy input, or a list of them for several inputs.
        tmp_path: a folder for the .keras file.

    Checks: the JSON-serialized config rebuilds an object of the same class whose config equals
    the original's; a .keras file of it (of a functional wrapper for a plain layer) loads back as
    the same class and gives bit-identical inference outputs; the weights are preserved.
    """
    inputs_list = _as_list(inputs)
    expected = _outputs(_call(instance, inputs))
    config = _json(instance.get_config())
    clone = type(instance).from_config(config)
    assert type(clone) is type(instance)
    assert _json(clone.get_config()) == config

    if isinstance(instance, keras.Model):
        to_save = instance
    else:
        symbolic = [
            keras.Input(shape=np.shape(x)[1:], dtype=str(np.asarray(x).dtype)) for x in inputs_list
        ]
        outputs = instance(*symbolic)
        to_save = keras.Model(symbolic if len(symbolic) > 1 else symbolic[0], outputs)
    path = str(tmp_path / f"{type(instance).__name__}.keras")
    to_save.save(path)
    loaded = keras.saving.load_model(path)
    got = _outputs(loaded(inputs))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    if not isinstance(instance, keras.Model):
        revived = [layer for layer in loaded.layers if type(layer) is type(instance)]
        assert len(revived) == 1
        for a, b in zip(revived[0].weights, instance.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return loaded


def run_loss_serialization_test(loss, y_true, y_pred):
    """A keras_asc loss survives keras.losses.serialize/deserialize with the same value."""
    config = _json(keras.losses.serialize(loss))
    clone = keras.losses.deserialize(config)
    assert type(clone) is type(loss)
    assert _json(keras.losses.serialize(clone)) == config
    np.testing.assert_array_equal(
        np.asarray(clone(y_true, y_pred)), np.asarray(loss(y_true, y_pred))
    )
    return clone


def assert_tf_data_parity(function, examples, atol=0.0):
    """`function` gives the same result eagerly and inside Dataset.map, unbatched and batched.

    Args:
        function: maps one example (or a batch, for the batched run) to a tensor.
        examples: numpy array `[N, ...]` of examples.
        atol: allowed absolute difference (0: bit-identical).
    """
    eager = np.stack([np.asarray(function(tf.constant(x))) for x in examples])
    dataset = tf.data.Dataset.from_tensor_slices(examples)
    unbatched = np.stack(list(dataset.map(function).as_numpy_iterator()))
    np.testing.assert_allclose(unbatched, eager, atol=atol, rtol=0)
    batched = np.concatenate(list(dataset.batch(2).map(function).as_numpy_iterator()))
    np.testing.assert_allclose(
        batched, np.asarray(function(tf.constant(examples))), atol=atol, rtol=0
    )

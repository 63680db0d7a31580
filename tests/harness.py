"""Shared test helpers: serialization, layer contracts and tf.data parity (keras-hub's habit).

Every registered ``keras_asc>`` class gets `run_serialization_test` (and every registered
layer `run_layer_test`) through the tables in ``tests/test_serialization_registry.py``; a class
registered without an entry there fails that module's discovery tests, so the next custom layer
cannot skip its round trip or its layer contract. `assert_tf_data_parity` checks a tf.data
function eagerly and inside ``Dataset.map``, unbatched and batched.
"""

import json
import warnings

import keras
import numpy as np
import tensorflow as tf


def _json(config):
    """A config as it is written to a .keras file (tuples become lists)."""
    return json.loads(json.dumps(config))


def revive(instance):
    """A new object of `instance`'s class from its JSON-serialized config (asserted equal)."""
    config = _json(instance.get_config())
    clone = type(instance).from_config(config)
    assert type(clone) is type(instance)
    assert _json(clone.get_config()) == config
    return clone


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


def run_serialization_test(instance, inputs, tmp_path, training_too=False, known_warning=None):
    """`instance` survives get_config/from_config and a .keras file with identical outputs.

    Args:
        instance: a keras_asc layer or model (called once here if not yet built).
        inputs: numpy input, or a list of them for several inputs.
        tmp_path: a folder for the .keras file.
        training_too: also compare one training-mode call of both (random layers: the seed
            state, e.g. a draw counter, must be saved too).
        known_warning: a regex of a load warning to tolerate (documented at the call site);
            any other warning while loading and calling fails the test.

    Checks: the JSON-serialized config rebuilds an object of the same class whose config equals
    the original's; a .keras file of it (of a functional wrapper for a plain layer) loads back as
    the same class, without warnings, and gives bit-identical inference outputs; the weights are
    preserved.

    Returns:
        the loaded model (the wrapper, for a plain layer).
    """
    inputs_list = _as_list(inputs)
    _call(instance, inputs)  # builds it
    revive(instance)

    if isinstance(instance, keras.Model):
        to_save = instance
    else:
        symbolic = [
            keras.Input(shape=np.shape(x)[1:], dtype=str(np.asarray(x).dtype)) for x in inputs_list
        ]
        outputs = instance(*symbolic)
        to_save = keras.Model(symbolic if len(symbolic) > 1 else symbolic[0], outputs)
    if training_too:
        to_save(inputs, training=True)  # advances the draw state: the file must hold it
    expected = _outputs(to_save(inputs))
    path = str(tmp_path / f"{type(instance).__name__}.keras")
    to_save.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Keras' "skipping variables" on a mismatch
        if known_warning:
            warnings.filterwarnings("ignore", message=known_warning)
        loaded = keras.saving.load_model(path)
        got = _outputs(loaded(inputs))
    _assert_equal_lists(got, expected)
    if training_too:
        _assert_equal_lists(
            _outputs(loaded(inputs, training=True)), _outputs(to_save(inputs, training=True))
        )
    if not isinstance(instance, keras.Model):
        revived = [layer for layer in loaded.layers if type(layer) is type(instance)]
        assert len(revived) == 1
        for a, b in zip(revived[0].weights, instance.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return loaded


def _assert_equal_lists(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


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


def _shapes(structure):
    """Nested tensors/specs/shape tuples → flat list of shape tuples (None kept)."""
    if isinstance(structure, dict):
        return [s for key in sorted(structure) for s in _shapes(structure[key])]
    if isinstance(structure, list | tuple) and not all(
        d is None or isinstance(d, int) for d in structure
    ):
        return [s for item in structure for s in _shapes(item)]
    if hasattr(structure, "shape"):
        return [tuple(structure.shape)]
    return [tuple(structure)]


def _assert_compatible(declared, actual, what):
    """Declared shapes match the actual ones, a None dimension standing for any size (e.g. the
    token count that training-mode patchout changes)."""
    declared = _shapes(declared)
    ok = len(declared) == len(actual) and all(
        len(d) == len(a) and all(x is None or x == y for x, y in zip(d, a))
        for d, a in zip(declared, actual)
    )
    assert ok, f"{what}: {declared} does not fit the actual output shapes {actual}"


def run_layer_test(
    layer, input_shapes, expected_output_shapes, input_dtypes=None, expected_output_dtype=None
):
    """`layer` keeps the Keras layer contract on inputs of the given shapes.

    Args:
        layer: a fresh (unbuilt) layer.
        input_shapes: one shape tuple (batch included), or a list of them for several inputs.
        expected_output_shapes: the output's shape tuple, or a flat list of them for several
            outputs (dict outputs in key order).
        input_dtypes: dtype name(s) of the inputs (default float32).
        expected_output_dtype: dtype name of the (first) output; default the layer's compute
            dtype.

    Checks: `build` on the shapes creates every weight (the call adds none); the call on random
    inputs gives the expected shapes and dtype; a symbolic call (batch size None) and
    `compute_output_shape` (where the layer defines it) agree with it (a None there fits any
    size); the JSON config rebuilds
    a layer whose build creates weights of the same shapes.

    Returns:
        the (eager) output.
    """
    shapes = list(input_shapes) if isinstance(input_shapes, list) else [input_shapes]
    dtypes = _as_list(input_dtypes or ["float32"] * len(shapes))
    rng = np.random.default_rng(0)
    inputs = [
        (rng.integers(0, 2, size=s) if "int" in d else rng.standard_normal(s)).astype(d)
        for s, d in zip(shapes, dtypes)
    ]
    clone = revive(layer)

    layer.build(*shapes)
    assert layer.built
    built_weights = [tuple(w.shape) for w in layer.weights]
    output = layer(*inputs)
    assert [tuple(w.shape) for w in layer.weights] == built_weights, "the call added weights"
    expected = _shapes(expected_output_shapes)
    assert _shapes(output) == expected, f"output shapes {_shapes(output)}, expected {expected}"
    first = _outputs(output)[0]
    assert str(first.dtype) == (expected_output_dtype or layer.compute_dtype)

    symbolic = layer(*[keras.KerasTensor((None, *s[1:]), dtype=d) for s, d in zip(shapes, dtypes)])
    _assert_compatible(symbolic, [(None, *s[1:]) for s in expected], "symbolic call")
    if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
        _assert_compatible(layer.compute_output_shape(*shapes), expected, "compute_output_shape")

    clone.build(*shapes)
    assert [tuple(w.shape) for w in clone.weights] == built_weights
    return output


def _stack(results, combine):
    """Per-example (or per-batch) nested results → one nested numpy result."""
    return tf.nest.map_structure(lambda *xs: combine([np.asarray(x) for x in xs]), *results)


def _assert_close(got, expected, atol, rtol, what):
    for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(expected)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=what)
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)


def _assert_mapped_close(dataset, combine, eager, atol, rtol, what):
    """The elements of `dataset`, stacked or concatenated, match the eager result."""
    got = _stack(list(dataset.as_numpy_iterator()), combine)
    _assert_close(got, eager, atol, rtol, f"{what} vs eager")


def assert_tf_data_parity(function, examples, index=None, batch_size=2, atol=0.0, rtol=0.0):
    """`function` gives the same result eagerly and inside `Dataset.map`, unbatched and batched.

    Args:
        function: a TensorFlow function of one example, or of a batch (it must take both unless
            ``index="batch"``); nested outputs are fine.
        examples: numpy array ``[N, ...]`` or a tuple of them (the function's positional
            arguments).
        index: None: ``function(*args)``; ``"example"``: ``function(*args, i)`` with the int64
            position of the example in the stream (a scalar for one example, ``[B]`` for a
            batch: the stateless-random contract of the augmentations); ``"batch"``:
            ``function(*batch_args, b)`` with the int64 batch number (per-batch draws, which
            have no per-example form: only the batched runs are compared).
        batch_size: the batch size of the batched runs (N need not be a multiple).
        atol, rtol: allowed difference (0: bit-identical; eager and graph float kernels may
            differ in the last bit).

    Returns:
        the eager result over all examples (batched call, or per-batch calls concatenated for
        ``index="batch"``), nested numpy.
    """
    args = examples if isinstance(examples, tuple) else (examples,)
    n = len(args[0])
    dataset = tf.data.Dataset.from_tensor_slices(args)
    batches = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]

    if index == "batch":
        eager = _stack(
            [
                function(*(tf.constant(a[s]) for a in args), tf.constant(b, tf.int64))
                for b, s in enumerate(batches)
            ],
            np.concatenate,
        )
        mapped = dataset.batch(batch_size).enumerate().map(lambda b, xs: function(*xs, b))
        _assert_mapped_close(mapped, np.concatenate, eager, atol, rtol, "batched Dataset.map")
        return eager

    def call(xs, positions):
        return function(*xs) if index is None else function(*xs, positions)

    eager = tf.nest.map_structure(
        np.asarray, call([tf.constant(a) for a in args], tf.range(n, dtype=tf.int64))
    )
    one_by_one = _stack(
        [call([tf.constant(a[i]) for a in args], tf.constant(i, tf.int64)) for i in range(n)],
        np.stack,
    )
    _assert_close(one_by_one, eager, atol, rtol, "eager per example vs eager batch")
    unbatched = dataset.enumerate().map(lambda i, xs: call(xs, i))
    _assert_mapped_close(unbatched, np.stack, eager, atol, rtol, "unbatched Dataset.map")

    def per_batch(b, xs):
        start = b * batch_size
        return call(xs, start + tf.range(tf.shape(xs[0], tf.int64)[0]))

    batched = dataset.batch(batch_size).enumerate().map(per_batch)
    _assert_mapped_close(batched, np.concatenate, eager, atol, rtol, "batched Dataset.map")
    return eager

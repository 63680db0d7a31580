"""FusedAdam / FusedAdamW: Keras' Adam / AdamW results from one fused kernel per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_asc.models.scene_classifier import SceneClassifier
from keras_asc.optimizers import FusedAdam
from keras_asc.optimizers import FusedAdamW

RNG = np.random.default_rng(0)
SHAPES = [(5, 7), (3,), (2, 3, 4)]
STEPS = 5
# Both sides compute the same formula in float32. Two things differ: the order of roundings
# (about one ulp per step: a few float32 ulps of the array's largest value after STEPS steps,
# since an element that passed near zero keeps the rounding of its larger past), and 1 - beta,
# which the kernel computes from beta in float32 and Keras from beta in float64 (for beta_2 =
# 0.999: 0.00099998713 against 0.001, 1.3e-5 relative). Both are bounded here.
ULPS = 32


def beta_rounding(beta):
    """Relative difference of 1 - beta computed from float32 beta and from float64 beta."""
    return abs((1 - float(np.float32(beta))) - (1 - beta)) / (1 - beta)


def assert_close(got, want, beta_1=0.9, beta_2=0.999):
    bound = ULPS * np.finfo("float32").eps + beta_rounding(beta_1) + beta_rounding(beta_2)
    np.testing.assert_allclose(got, want, rtol=0, atol=bound * np.abs(want).max())


CASES = {
    "adam": (FusedAdam, keras.optimizers.Adam, {"learning_rate": 0.01}),
    "adam, beta and epsilon set": (
        FusedAdam,
        keras.optimizers.Adam,
        {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4},
    ),
    "adamw": (FusedAdamW, keras.optimizers.AdamW, {"learning_rate": 0.01, "weight_decay": 0.1}),
    "amsgrad (Keras' own update)": (
        FusedAdam,
        keras.optimizers.Adam,
        {"learning_rate": 0.01, "amsgrad": True},
    ),
}


def _run(cls, kwargs, initial, gradients, compiled):
    variables = [keras.Variable(x) for x in initial]
    optimizer = cls(**kwargs)

    def step(grads):
        optimizer.apply(grads, variables)

    step = tf.function(step) if compiled else step
    for grads in gradients:
        step([tf.convert_to_tensor(g) for g in grads])
    return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_weights_and_slots_as_keras(case, compiled):
    fused, reference, kwargs = CASES[case]
    initial = [RNG.standard_normal(s).astype("float32") for s in SHAPES]
    gradients = [[RNG.standard_normal(s).astype("float32") for s in SHAPES] for _ in range(STEPS)]
    weights, slots = _run(fused, kwargs, initial, gradients, compiled)
    expected_weights, expected_slots = _run(reference, kwargs, initial, gradients, compiled)
    assert len(slots) == len(expected_slots)  # iterations, m and v (+ v_hat) of each variable
    betas = {k: kwargs[k] for k in ("beta_1", "beta_2") if k in kwargs}
    for got, want in zip(weights + slots, expected_weights + expected_slots):
        assert_close(got, want, **betas)
    moved = max(np.abs(w - x).max() for w, x in zip(weights, initial))
    assert moved > 1e-3  # the steps did update


def test_sparse_gradient_takes_keras_update():
    initial = RNG.standard_normal((6, 4)).astype("float32")
    rows = tf.IndexedSlices(
        tf.constant(RNG.standard_normal((2, 4)).astype("float32")),
        tf.constant([1, 4]),
        tf.constant([6, 4]),
    )
    results = []
    for cls in (FusedAdam, keras.optimizers.Adam):
        variable = keras.Variable(initial)
        cls(learning_rate=0.1).apply([rows], [variable])
        results.append(variable.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0][[0, 2, 3, 5]], initial[[0, 2, 3, 5]])


def test_loss_scale_optimizer_wraps_it():
    initial = [RNG.standard_normal(s).astype("float32") for s in SHAPES]
    grads = [RNG.standard_normal(s).astype("float32") for s in SHAPES]
    results = []
    for cls in (FusedAdam, keras.optimizers.Adam):
        variables = [keras.Variable(x) for x in initial]
        optimizer = keras.optimizers.LossScaleOptimizer(cls(learning_rate=0.01))
        scale = optimizer.initial_scale
        optimizer.apply([tf.constant(g * scale) for g in grads], variables)  # scaled, as fit does
        results.append([v.numpy() for v in variables])
    for got, want, start in zip(*results, initial):
        assert_close(got, want)
        assert np.abs(got - start).max() > 1e-3  # unscaled: one step of 0.01


def test_compiled_model_keeps_it_through_a_keras_file(tmp_path):
    model = SceneClassifier.from_preset("passt_tiny", num_classes=3, seed=0, load_weights=False)
    model.compile()  # the default optimizer
    assert type(model.optimizer) is FusedAdam
    x = 0.1 * RNG.standard_normal((4, 8000)).astype("float32")
    y = np.array([0, 1, 2, 1])
    model.train_on_batch(x, y)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is FusedAdam
    assert int(loaded.optimizer.iterations) == 1
    for got, want in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize(
    "make, fused",
    [
        (lambda: FusedAdam(learning_rate=0.01), True),
        (lambda: FusedAdamW(learning_rate=0.01), True),
        (lambda: FusedAdam(learning_rate=0.01, amsgrad=True), False),
        (lambda: keras.optimizers.Adam(learning_rate=0.01), False),
    ],
    ids=["FusedAdam", "FusedAdamW", "FusedAdam amsgrad", "keras Adam"],
)
def test_the_fused_kernel_is_what_runs(make, fused):
    variables = [keras.Variable(np.ones(s, "float32")) for s in SHAPES]
    optimizer = make()
    grads = [tf.ones(s) for s in SHAPES]
    graph = tf.function(lambda: optimizer.apply(grads, variables)).get_concrete_function().graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == (len(SHAPES) if fused else 0)

"""Every registered keras_asc class round-trips through its config and a .keras file, and every
registered layer keeps the layer contract (`run_layer_test`).

`SERIALIZATION_TABLE` names, for each ``keras_asc>`` class, a small instance and an input. The
discovery test fails when a class is registered (``register_keras_serializable(package=
"keras_asc")``) without an entry here, so no custom layer, model or loss ships untested.
"""

import keras
import numpy as np
import pytest
from harness import run_layer_test
from harness import run_loss_serialization_test
from harness import run_serialization_test

import keras_asc
import keras_asc.irgen  # noqa: F401  (registers the DIR generator classes)
from keras_asc.irgen.condition_encoding import CONDITION_DIM

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _dir_augmentation():
    irs = [RNG.standard_normal(n).astype("float32") * np.exp(-np.arange(n) / 3) for n in (7, 13)]
    layer = keras_asc.DirAugmentation(irs, ir_labels=[4, 2], probability=0.8, seed=3)
    return layer, [_rand(3, 50), np.array([0, 1, 0], "int32")]


def _generator():
    from keras_asc.irgen.generator import DirGenerator

    return DirGenerator(
        output_length=64,
        initial_length=4,
        initial_channels=8,
        channels=(8, 4),
        strides=(4, 4),
        kernel_size=5,
        seed=1,
    )


def _discriminator():
    from keras_asc.irgen.discriminator import DirDiscriminator

    return DirDiscriminator(
        input_length=64, filters=(4, 8), strides=(4, 4), kernel_size=5, joint_filters=6, seed=2
    )


def _gan():
    from keras_asc.irgen.gan import DirGAN

    return DirGAN(_generator(), _discriminator())


def _condition():
    return RNG.uniform(0, 1, (2, CONDITION_DIM)).astype("float32")


# registered name -> factory of (instance, input)
SERIALIZATION_TABLE = {
    "keras_asc>ClassTokens": lambda: (keras_asc.layers.ClassTokens(), _rand(2, 20, 8)),
    "keras_asc>PatchEmbedding": lambda: (
        keras_asc.layers.PatchEmbedding(8, patch_size=(16, 8), stride=(10, 4)),
        _rand(2, 128, 40),
    ),
    "keras_asc>PatchPositionEmbedding": lambda: (
        keras_asc.layers.PatchPositionEmbedding(12, 30, random_time_offset=False, seed=3),
        _rand(2, 12, 9, 8),
    ),
    "keras_asc>StructuredPatchout": lambda: (
        keras_asc.layers.StructuredPatchout(frequency=2, time=1, seed=4),
        _rand(2, 12, 9, 8),
    ),
    "keras_asc>UnstructuredPatchout": lambda: (
        keras_asc.layers.UnstructuredPatchout(3, seed=5),
        _rand(2, 20, 8),
    ),
    "keras_asc>FusedDense": lambda: (keras_asc.layers.FusedDense(6), _rand(2, 20, 8)),
    "keras_asc>FastLayerNormalization": lambda: (
        keras_asc.layers.FastLayerNormalization(epsilon=1e-6),
        _rand(2, 20, 8),
    ),
    "keras_asc>MultiHeadSelfAttention": lambda: (
        keras_asc.layers.MultiHeadSelfAttention(4, use_qkv_bias=False),
        _rand(2, 20, 8),
    ),
    "keras_asc>TransformerBlock": lambda: (
        keras_asc.layers.TransformerBlock(2, 24, layer_norm_epsilon=1e-5),
        _rand(2, 20, 8),
    ),
    "keras_asc>KaldiMelSpectrogram": lambda: (
        keras_asc.KaldiMelSpectrogram(freqm=8, timem=4),
        0.1 * _rand(2, 8000),
    ),
    "keras_asc>DirAugmentation": _dir_augmentation,
    "keras_asc>FreqMixStyle": lambda: (
        keras_asc.FreqMixStyle(probability=1.0, alpha=0.5, seed=2),
        _rand(3, 4, 6),
    ),
    "keras_asc>Mixup": lambda: (keras_asc.Mixup(alpha=0.3, seed=3), _rand(3, 24)),
    "keras_asc>Roll": lambda: (keras_asc.Roll(max_shift=4, seed=1), _rand(3, 24)),
    "keras_asc>PaSSTBackbone": lambda: (
        keras_asc.PaSSTBackbone.from_preset("passt_tiny", frequency_patchout=2, seed=0),
        _rand(2, 128, 100),
    ),
    "keras_asc>SceneClassifier": lambda: (
        # The Task with its nested objects: auxiliary loss (+ class_tokens output), augmenter.
        keras_asc.SceneClassifier.from_preset(
            "passt_tiny",
            seed=0,
            auxiliary_loss_weight=0.5,
            auxiliary_loss=keras_asc.InverseContrastiveLoss(target="tokens"),
            augmenter=keras_asc.Augmenter(mixstyle_p=0.4, mixup_alpha=0.2, seed=1),
        ),
        0.1 * _rand(2, 32000),
    ),
    "keras_asc>DirGenerator": lambda: (_generator(), _condition()),
    "keras_asc>DirDiscriminator": lambda: (_discriminator(), [_rand(2, 64), _condition()]),
    "keras_asc>DirGAN": lambda: (_gan(), _condition()),
}

# Losses take (y_true, y_pred) rather than model inputs.
LOSS_TABLE = {
    "keras_asc>InverseContrastiveLoss": lambda: (
        keras_asc.InverseContrastiveLoss(alpha=0.2, beta=1.0, normalization="blocks"),
        np.array([0, 0, 1, 2], "int32"),
        _rand(4, 8),
    ),
}


# Plain serializable objects (not layers): config round trip only; the task that holds one is
# saved to .keras in SERIALIZATION_TABLE.
OBJECT_TABLE = {
    "keras_asc>Augmenter": lambda: keras_asc.Augmenter(
        _dir_augmentation()[0], mixstyle_p=0.4, mixstyle_alpha=0.3, mixup_alpha=0.2, seed=1
    ),
    # Optimizers: a compiled model saved to .keras keeps its state (tests/test_fused_adam.py).
    "keras_asc>FusedAdam": lambda: keras_asc.optimizers.FusedAdam(
        learning_rate=3e-4, beta_2=0.99, epsilon=1e-6, weight_decay=0.01
    ),
    "keras_asc>FusedAdamW": lambda: keras_asc.optimizers.FusedAdamW(
        learning_rate=3e-4, weight_decay=0.05
    ),
}


# Registered functions (activations): serialized by name and revived as the same function; a
# FusedDense using one round-trips its config with identical outputs.
FUNCTION_TABLE = {
    "keras_asc>exact_gelu": (keras_asc.layers._utils.exact_gelu, (2, 5, 8)),
}


# Every registered plain layer (not a model): (factory, input shape(s), output shape(s)[, input
# dtypes]) for `run_layer_test`: build on the shapes, call, shapes/dtype, compute_output_shape,
# config round trip.
LAYER_CONTRACT_TABLE = {
    "keras_asc>PatchEmbedding": (
        lambda: keras_asc.layers.PatchEmbedding(8, patch_size=(16, 8), stride=(10, 4)),
        (2, 128, 40),
        (2, 12, 9, 8),
    ),
    "keras_asc>PatchPositionEmbedding": (
        lambda: keras_asc.layers.PatchPositionEmbedding(12, 30, random_time_offset=False, seed=3),
        (2, 12, 9, 8),
        (2, 12, 9, 8),
    ),
    "keras_asc>StructuredPatchout": (
        lambda: keras_asc.layers.StructuredPatchout(frequency=2, time=1, seed=4),
        (2, 12, 9, 8),
        (2, 12, 9, 8),
    ),
    "keras_asc>UnstructuredPatchout": (
        lambda: keras_asc.layers.UnstructuredPatchout(3, seed=5),
        (2, 20, 8),
        (2, 20, 8),
    ),
    "keras_asc>ClassTokens": (lambda: keras_asc.layers.ClassTokens(), (2, 20, 8), (2, 22, 8)),
    "keras_asc>FusedDense": (lambda: keras_asc.layers.FusedDense(6), (2, 20, 8), (2, 20, 6)),
    "keras_asc>FastLayerNormalization": (
        lambda: keras_asc.layers.FastLayerNormalization(epsilon=1e-6),
        (2, 20, 8),
        (2, 20, 8),
    ),
    "keras_asc>MultiHeadSelfAttention": (
        lambda: keras_asc.layers.MultiHeadSelfAttention(4, use_qkv_bias=False),
        (2, 20, 8),
        (2, 20, 8),
    ),
    "keras_asc>TransformerBlock": (
        lambda: keras_asc.layers.TransformerBlock(2, 24, layer_norm_epsilon=1e-5),
        (2, 20, 8),
        (2, 20, 8),
    ),
    "keras_asc>KaldiMelSpectrogram": (
        lambda: keras_asc.KaldiMelSpectrogram(n_mels=64, freqm=8, timem=4),
        (2, 8000),
        (2, 64, 25),
    ),
    "keras_asc>DirAugmentation": (
        lambda: _dir_augmentation()[0],
        [(3, 50), (3,)],
        [(3, 50), (3,)],
        ["float32", "int32"],
    ),
    "keras_asc>FreqMixStyle": (
        lambda: keras_asc.FreqMixStyle(probability=1.0, alpha=0.5, seed=2),
        (3, 4, 6),
        (3, 4, 6),
    ),
    "keras_asc>Mixup": (
        lambda: keras_asc.Mixup(alpha=0.3, seed=3),
        (3, 24),
        [(3, 24), (3,), (3,)],
    ),
    "keras_asc>Roll": (lambda: keras_asc.Roll(max_shift=4, seed=1), (3, 24), (3, 24)),
}


def test_every_registered_layer_has_a_contract_case():
    layers = {
        name
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("keras_asc>")
        and isinstance(cls, type)
        and issubclass(cls, keras.layers.Layer)
        and not issubclass(cls, keras.Model)
    }
    assert layers - set(LAYER_CONTRACT_TABLE) == set(), "registered layers without a contract case"
    assert set(LAYER_CONTRACT_TABLE) - layers == set(), "contract cases of no registered layer"


@pytest.mark.parametrize("name", sorted(LAYER_CONTRACT_TABLE))
def test_layer_contract(name):
    make, input_shapes, output_shapes, *dtypes = LAYER_CONTRACT_TABLE[name]
    layer = make()
    assert keras.saving.get_registered_name(type(layer)) == name
    run_layer_test(layer, input_shapes, output_shapes, *dtypes)


def test_every_registered_class_has_a_serialization_case():
    registered = {
        name for name in keras.saving.get_custom_objects() if name.startswith("keras_asc>")
    }
    tabled = set(SERIALIZATION_TABLE) | set(LOSS_TABLE) | set(OBJECT_TABLE) | set(FUNCTION_TABLE)
    assert registered - tabled == set(), "registered without a serialization case"
    assert tabled - registered == set(), "table entries that are not registered"


# Load warnings that are known and harmless (every other one fails the round trip).
KNOWN_LOAD_WARNINGS = {
    # DirGAN has no build_from_config: its variables are those of the generator and the
    # discriminator, which load with them; the outputs are checked identical all the same.
    "keras_asc>DirGAN": r"Model 'dir_gan(_\d+)?' had a build config",
}


@pytest.mark.parametrize("name", sorted(SERIALIZATION_TABLE))
def test_serialization_round_trip(name, tmp_path):
    instance, inputs = SERIALIZATION_TABLE[name]()
    assert keras.saving.get_registered_name(type(instance)) == name
    run_serialization_test(instance, inputs, tmp_path, known_warning=KNOWN_LOAD_WARNINGS.get(name))


@pytest.mark.parametrize("name", sorted(LOSS_TABLE))
def test_loss_serialization_round_trip(name):
    loss, y_true, y_pred = LOSS_TABLE[name]()
    assert keras.saving.get_registered_name(type(loss)) == name
    run_loss_serialization_test(loss, y_true, y_pred)


@pytest.mark.parametrize("name", sorted(FUNCTION_TABLE))
def test_function_serialization_round_trip(name):
    function, shape = FUNCTION_TABLE[name]
    serialized = keras.saving.serialize_keras_object(function)
    assert keras.saving.deserialize_keras_object(serialized) is function
    dense = keras_asc.layers.FusedDense(4, activation=function)
    inputs = _rand(*shape)
    outputs = np.asarray(dense(inputs))
    revived = keras_asc.layers.FusedDense.from_config(dense.get_config())
    revived.build(inputs.shape)
    revived.set_weights(dense.get_weights())
    assert revived.activation is function
    np.testing.assert_array_equal(np.asarray(revived(inputs)), outputs)


@pytest.mark.parametrize("name", sorted(OBJECT_TABLE))
def test_object_serialization_round_trip(name):
    instance = OBJECT_TABLE[name]()
    assert keras.saving.get_registered_name(type(instance)) == name
    serialized = keras.saving.serialize_keras_object(instance)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(instance)
    assert keras.saving.serialize_keras_object(revived) == serialized

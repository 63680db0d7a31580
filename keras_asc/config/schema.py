"""The experiment-config schema: which YAML section feeds which constructor or function.

Every section of a config file maps 1:1 to the keyword arguments of one callable (big_vision /
keras-hub habit: the constructor kwargs *are* the config). The allowed keys of a section are the
parameters of that callable's signature, so a new constructor argument is configurable without
touching this file, and a misspelt key is an error. Types come from the parameter defaults
(``False`` → bool, ``3`` → int, ``0.5`` → number, ``"x"`` → string); :data:`CHECKS` adds
ranges and types for the parameters a default does not describe (``None`` defaults).

Sections and their targets:

========== ===================================================================================
section    target
========== ===================================================================================
seed       the global seed (int); ``--seeds N`` runs seed, seed+1, ...
data       :func:`keras_asc.data.pipeline.make_datasets`
dirs       ``sets`` (DIR TFRecord folders, :func:`keras_asc.data.dirs.load_dirs`) + the DIR
           augmentation kwargs; ``null`` = no DIR augmentation
augment    :class:`keras_asc.augment.Augmenter` kwargs (Freq-MixStyle, mixup); ``{}`` = off
model      ``preset`` (``SceneClassifier.from_preset`` name), ``weights`` (``audioset``, a
           converted PaSST weights file, or null: random weights, whatever the preset) +
           ``SceneClassifier`` kwargs overriding the preset
loss       :func:`keras_asc.models.scene_classifier.icl_task_kwargs` (``icl_weight``,
           ``icl_alpha``, ``icl_beta``, ``icl_target``, ...); ``{}`` = plain CE
optimizer  ``name`` (adam | adamw) + ``keras.optimizers.Adam`` / ``AdamW`` kwargs (run fused:
           ``keras_asc.optimizers.FusedAdam`` / ``FusedAdamW``)
schedule   ``name`` (plateau | cpjku | constant) + the schedule callback kwargs
training   :class:`keras_asc.training.options.TrainingOptions`
wandb      :class:`keras_asc.training.wandb_logging.WandbLogger`
distribute :func:`keras_asc.training.distribute.make_strategy`
========== ===================================================================================

Targets are named as ``"module:attribute"`` strings and imported only when a config is validated,
so this module itself imports nothing heavy.
"""

import importlib
import inspect
import numbers

# === Value checks ===
# Each check takes a value and returns None when it is fine or a phrase saying what was expected.


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def number(lo=None, hi=None, lo_open=False, hi_open=False, optional=False, integer=False):
    """A check for a number (or an int when ``integer``) inside ``[lo, hi]`` (or open bounds)."""
    kind = "an integer" if integer else "a number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    expected = kind + (" " + " and ".join(parts) if parts else "")
    if optional:
        expected += " or null"

    def check(value):
        if value is None and optional:
            return None
        if not (_is_int(value) if integer else _is_number(value)):
            return expected
        if lo is not None and (value <= lo if lo_open else value < lo):
            return expected
        if hi is not None and (value >= hi if hi_open else value > hi):
            return expected
        return None

    check.expected = expected
    return check


def choice(*options, optional=False):
    """A check for one of ``options``."""
    expected = "one of " + ", ".join(repr(o) for o in options) + (" or null" if optional else "")

    def check(value):
        if value is None and optional:
            return None
        return None if value in options else expected

    check.expected = expected
    return check


def string(optional=False):
    expected = "a string" + (" or null" if optional else "")

    def check(value):
        if value is None and optional:
            return None
        return None if isinstance(value, str) else expected

    check.expected = expected
    return check


def string_list(optional=False, non_empty=False):
    expected = ("a non-empty " if non_empty else "a ") + "list of strings"
    expected += " or null" if optional else ""

    def check(value):
        if value is None and optional:
            return None
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            return expected
        if non_empty and not value:
            return expected
        return None

    check.expected = expected
    return check


def anything(value):
    return None


anything.expected = "any value"


def from_default(default):
    """The check implied by a parameter default (``inspect.Parameter.empty`` or None: anything)."""
    if isinstance(default, bool):
        expected = "true or false"
        check = lambda value: None if isinstance(value, bool) else expected  # noqa: E731
        check.expected = expected
        return check
    if _is_int(default):
        return number(integer=True)
    if _is_number(default):
        return number()
    if isinstance(default, str):
        return string()
    if isinstance(default, list | tuple):
        expected = "a list"
        check = lambda value: None if isinstance(value, list | tuple) else expected  # noqa: E731
        check.expected = expected
        return check
    return anything


# === Sections ===


class Section:
    """One config section: the keys it accepts and how to check them.

    Args:
        target: ``"module:attribute"`` of the callable whose keyword arguments the section holds
            (a tuple of them: the union of their parameters), or None for a section made only
            of ``extra`` keys.
        exclude: parameters of the target that the runner fills itself (not configurable).
        extra: dict key -> (default, check) of keys the runner consumes before calling the target.
        checks: dict key -> check overriding the default-derived check of a target parameter.
        include: None (every parameter of the target) or a predicate ``name -> bool`` picking the
            target parameters this section owns (several sections can share one target).
        fill_defaults: whether the resolved config lists every key with its default (True for
            sections whose defaults are owned here; False where a preset supplies the values).
        nullable: whether the whole section may be ``null`` (feature off).
    """

    def __init__(
        self,
        target=None,
        exclude=(),
        extra=None,
        checks=None,
        include=None,
        fill_defaults=True,
        nullable=False,
        doc="",
    ):
        self.target = target
        self.include = include
        self.exclude = tuple(exclude)
        self.extra = dict(extra or {})
        self.checks = dict(checks or {})
        self.fill_defaults = fill_defaults
        self.nullable = nullable
        self.doc = doc

    def fields(self):
        """Returns dict key -> (default or ``inspect.Parameter.empty``, check)."""
        # The runner's own keys first (preset, weights, sets): they read best at the top.
        fields = dict(self.extra)
        targets = self.target if isinstance(self.target, tuple) else (self.target,)
        for target in targets:
            if target is None:
                continue
            for name, param in signature_params(target).items():
                if name in self.exclude or (self.include and not self.include(name)):
                    continue
                check = self.checks.get(name) or from_default(param.default)
                fields[name] = (param.default, check)
        return fields


class Nested:
    """A check marker: the value is a mapping validated as its own :class:`Section`.

    Args:
        section: the :class:`Section` of the nested mapping.
        optional: whether the value may be null.
    """

    def __init__(self, section, optional=True):
        self.section = section
        self.optional = optional
        self.expected = "a mapping" + (" or null" if optional else "")

    def __call__(self, value):
        if value is None and self.optional:
            return None
        return None if isinstance(value, dict) else self.expected


class DispatchSection:
    """A section whose ``name`` key picks one of several targets (optimizer, schedule).

    Args:
        options: dict name -> :class:`Section` for that choice.
        default: the ``name`` used when the section leaves it out.
    """

    def __init__(self, options, default, doc=""):
        self.options = dict(options)
        self.default = default
        self.nullable = False
        self.doc = doc


def resolve_target(target):
    """Imports ``"module:attribute"`` and returns the attribute."""
    module_name, _, attribute = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def signature_params(target):
    """Keyword parameters of ``target`` (a class: its ``__init__``), without self/*args/**kwargs."""
    obj = resolve_target(target) if isinstance(target, str) else target
    func = obj.__init__ if inspect.isclass(obj) else obj
    params = {}
    for name, param in inspect.signature(func).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        params[name] = param
    return params


def preset_name(value):
    """Check: a key of ``keras_asc.models.passt_presets.passt_presets``."""
    from keras_asc.models.passt_presets import passt_presets

    if isinstance(value, str) and value in passt_presets:
        return None
    return "one of the presets " + ", ".join(sorted(passt_presets))


preset_name.expected = "a preset name (keras_asc.models.passt_presets)"

_POSITIVE = number(0, lo_open=True)
_POSITIVE_INT = number(1, integer=True)
_OPTIONAL_POSITIVE_INT = number(1, integer=True, optional=True)
_NON_NEGATIVE = number(0)
_NON_NEGATIVE_INT = number(0, integer=True)
_PROBABILITY = number(0, 1)
_OPEN_UNIT = number(0, 1, lo_open=True, hi_open=True)

# Optimizer kwargs that would bypass the schedule or are not meaningful in a config file.
_OPTIMIZER_EXCLUDE = ("name", "loss_scale_factor", "gradient_accumulation_steps")
_OPTIMIZER_CHECKS = {
    "learning_rate": _POSITIVE,
    "beta_1": _OPEN_UNIT,
    "beta_2": _OPEN_UNIT,
    "epsilon": _POSITIVE,
    "weight_decay": number(0, optional=True),
    "clipnorm": number(0, lo_open=True, optional=True),
    "clipvalue": number(0, lo_open=True, optional=True),
    "global_clipnorm": number(0, lo_open=True, optional=True),
    "use_ema": from_default(False),
    "ema_momentum": _PROBABILITY,
    "ema_overwrite_frequency": _OPTIONAL_POSITIVE_INT,
}

# Top-level scalar keys: key -> (default, check).
SCALARS = {
    # The global seed: data order, windows, augmentation draws and initialisation.
    "seed": (0, number(0, integer=True)),
}

SCHEMA = {
    "data": Section(
        target="keras_asc.data.pipeline:make_datasets",
        exclude=("seed",),
        checks={
            "path": string(),
            "batch_size": _POSITIVE_INT,
            "eval_batch_size": _OPTIONAL_POSITIVE_INT,
            "window_samples": _POSITIVE_INT,
            "windows_per_recording": _POSITIVE_INT,
            "shuffle_buffer": _POSITIVE_INT,
            "roll_samples": _NON_NEGATIVE_INT,
            "train_view": choice("10s", "1s"),
            "targets": choice("auto", "dict", "scene"),
            "max_train_examples": _OPTIONAL_POSITIVE_INT,
            "max_eval_examples": _OPTIONAL_POSITIVE_INT,
        },
    ),
    "dirs": Section(
        target="keras_asc.augment.dir_augmentation:DirAugmentation",
        exclude=("irs", "ir_labels", "num_irs", "ir_length", "seed", "name", "dtype", "trainable"),
        extra={
            "sets": (inspect.Parameter.empty, string_list(non_empty=True)),
            "max_ir_samples": (None, _OPTIONAL_POSITIVE_INT),
        },
        checks={
            "probability": _PROBABILITY,
            "source_devices": string_list(non_empty=True),
            "device_labels": choice("per_ir", "per_microphone", "shared"),
        },
        nullable=True,
    ),
    "augment": Section(
        # The runner passes dir_augmentation (from `dirs`) and seed itself.
        target="keras_asc.augment.augmenter:Augmenter",
        exclude=("dir_augmentation", "seed"),
        fill_defaults=False,
        checks={
            "mixstyle_p": _PROBABILITY,
            "mixstyle_alpha": _POSITIVE,
            "mixup_alpha": _NON_NEGATIVE,
        },
    ),
    "model": Section(
        # SceneClassifier.from_preset(preset, frontend=..., dtype=..., **backbone overrides).
        target="keras_asc.models.passt_backbone:PaSSTBackbone",
        exclude=("name", "dtype", "trainable"),
        extra={
            "preset": (inspect.Parameter.empty, preset_name),
            # A converted weights file, "audioset" (the preset's official checkpoint, fetched
            # and converted once into the weights cache) or null (random initialisation).
            "weights": (None, string(optional=True)),
            # Keras dtype policies; mixed_* keep float32 variables (docs/reproduce_paper.md).
            "dtype": (
                None,
                choice(
                    "float32",
                    "mixed_bfloat16",
                    "mixed_float16",
                    "bfloat16",
                    "float16",
                    optional=True,
                ),
            ),
            "frontend": (
                None,
                Nested(
                    Section(
                        target="keras_asc.layers.kaldi_mel_spectrogram:KaldiMelSpectrogram",
                        exclude=("name", "dtype", "trainable", "autocast"),
                        checks={
                            "fmax": number(0, lo_open=True, optional=True),
                            "seed": number(0, integer=True, optional=True),
                        },
                        fill_defaults=False,
                    )
                ),
            ),
        },
        checks={"seed": number(0, integer=True, optional=True)},
        fill_defaults=False,
    ),
    "loss": Section(
        target="keras_asc.models.scene_classifier:icl_task_kwargs",
        fill_defaults=False,
        checks={
            "icl_weight": _NON_NEGATIVE,
            "icl_alpha": number(),
            "icl_beta": _POSITIVE,
            "icl_normalization": choice("pairs", "blocks"),
            "icl_target": choice("pooled", "tokens", "normalized"),
            "icl_num_devices": _OPTIONAL_POSITIVE_INT,
            "icl_rampup_steps": _NON_NEGATIVE_INT,
        },
    ),
    "optimizer": DispatchSection(
        {
            "adam": Section(
                target="keras_asc.optimizers:FusedAdam",
                exclude=_OPTIMIZER_EXCLUDE,
                checks=_OPTIMIZER_CHECKS,
            ),
            "adamw": Section(
                target="keras_asc.optimizers:FusedAdamW",
                exclude=_OPTIMIZER_EXCLUDE,
                checks=_OPTIMIZER_CHECKS,
            ),
        },
        default="adam",
    ),
    "schedule": DispatchSection(
        {
            "plateau": Section(
                target="keras_asc.training.callbacks:PlateauSchedule",
                checks={
                    "factor": _OPEN_UNIT,
                    "patience": _POSITIVE_INT,
                    "cooldown": _NON_NEGATIVE_INT,
                    "min_lr": _NON_NEGATIVE,
                    "min_delta": _NON_NEGATIVE,
                    "mode": choice("min", "max"),
                },
            ),
            "cpjku": Section(
                target="keras_asc.training.callbacks:WarmupRampdownSchedule",
                exclude=("base_learning_rate",),  # the optimizer's learning_rate
                checks={
                    "warmup_epochs": _NON_NEGATIVE_INT,
                    "rampdown_start": _NON_NEGATIVE_INT,
                    "rampdown_epochs": _NON_NEGATIVE_INT,
                    "last_value": _PROBABILITY,
                },
            ),
            "constant": Section(),
        },
        default="constant",
    ),
    "training": Section(
        target="keras_asc.training.options:TrainingOptions",
        checks={
            "epochs": _POSITIVE_INT,
            "steps_per_epoch": _OPTIONAL_POSITIVE_INT,
            "monitor_mode": choice("min", "max"),
            "verbose": choice(0, 1, 2),
            "final_weights": choice("last", "best"),
        },
    ),
    "wandb": Section(
        target="keras_asc.training.wandb_logging:WandbLogger",
        exclude=("run_dir", "config", "run_id", "validation", "history"),
        checks={
            "mode": choice("offline", "online", "disabled"),
            "project": string(),
            "entity": string(optional=True),
            "name": string(optional=True),
            "group": string(optional=True),
            "tags": string_list(),
        },
    ),
    "distribute": Section(
        target="keras_asc.training.distribute:make_strategy",
        checks={
            "strategy": choice("none", "mirrored", "multiworker"),
            "devices": string_list(optional=True, non_empty=True),
        },
    ),
}

"""Reading, overriding, validating and saving experiment configs (YAML).

A config file is YAML read with ``yaml.safe_load``. It may start with ``extends: base.yaml``
(a path relative to the file): the base is read first and the file's sections are merged into it
key by key. ``--set a.b=value`` overrides are applied next; ``value`` is parsed as YAML, so
``--set training.epochs=3`` gives an int and ``--set model.weights=null`` gives None.

In the ``optimizer`` and ``schedule`` sections the ``name`` key picks the target; giving another
``name`` (in a derived file or by ``--set``) starts that section afresh rather than merging keys
that belong to the previous choice.

Validation (:func:`resolve_config`) rejects unknown keys, wrong types and out-of-range values
with a :class:`~asc_core.errors.UserError` that names the file (or the ``--set`` argument) and
the full key path, and returns the *resolved* config: every section present, defaults filled in,
``extends`` removed. :func:`save_config` writes it (atomically) next to every output, and
:func:`load_config` reads such a file back unchanged.
"""

import copy
import difflib
import inspect
import os
import re

import yaml

from asc_core.errors import UserError
from asc_core.files import atomic_write_text
from keras_asc.config.schema import SCALARS
from keras_asc.config.schema import SCHEMA
from keras_asc.config.schema import DispatchSection
from keras_asc.config.schema import Nested

# A YAML 1.1 loader reads "1e-5" (no dot) as a string; such values get a hint.
_FLOAT_LOOKING = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


# The shipped configs (a link to the top-level configs/ in a checkout; package data in a wheel).
SHIPPED_CONFIGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"
)


def shipped_config_names():
    """Names of the shipped configs (``icl``, ``grid/lambda_0.5``, ...), sorted."""
    names = []
    for folder, _, files in os.walk(SHIPPED_CONFIGS, followlinks=True):
        rel = os.path.relpath(folder, SHIPPED_CONFIGS)
        for name in files:
            if name.endswith(".yaml"):
                stem = name[: -len(".yaml")]
                names.append(stem if rel == "." else f"{rel}/{stem}".replace(os.sep, "/"))
    return sorted(names)


def resolve_config_path(name):
    """A config file path from ``name``: an existing file, or a shipped config's name.

    ``configs/icl.yaml`` (a file), ``icl`` or ``icl.yaml`` (shipped), ``grid/lambda_0.5`` all
    work from any directory.

    Raises:
        UserError: neither a file nor a shipped config; the message lists the shipped ones.
    """
    if os.path.isfile(name):
        return name
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    stem = stem.replace(os.sep, "/")
    if stem.startswith("configs/"):
        stem = stem[len("configs/") :]
    if stem in shipped_config_names():
        return os.path.join(SHIPPED_CONFIGS, *stem.split("/")) + ".yaml"
    raise UserError(
        f"--config {name}: neither a file nor a shipped config; shipped configs: "
        + ", ".join(shipped_config_names())
    )


def load_config(path, overrides=(), *, schema=SCHEMA, scalars=SCALARS, shipped=True):
    """Reads a config file, applies ``--set`` overrides and validates it.

    Args:
        path: str, the YAML file, or (``shipped``) the name of a shipped config (see
            `resolve_config_path`).
        overrides: iterable of ``"a.b=value"`` strings, applied in order.
        schema, scalars: the sections and top-level scalars of the format (default: the scene
            classifier's, :mod:`keras_asc.config.schema`); see :func:`resolve_config`.
        shipped: whether ``path`` may name a shipped config.

    Returns:
        dict, the resolved config (see :func:`resolve_config`).
    """
    path = resolve_config_path(os.fspath(path)) if shipped else os.fspath(path)
    raw = read_config_file(path)
    overridden = {}
    for text in overrides:
        keys, value = parse_override(text)
        set_path(raw, keys, value, source=f"--set {text}", schema=schema)
        overridden[".".join(keys)] = text
    return resolve_config(
        raw, source=str(path), overridden=overridden, schema=schema, scalars=scalars
    )


def read_config_file(path, _chain=()):
    """Reads one YAML config file, following ``extends`` (no validation).

    Args:
        path: str, the file.

    Returns:
        dict, the merged raw config without the ``extends`` key.
    """
    path = os.path.abspath(path)
    if path in _chain:
        cycle = " -> ".join(list(_chain) + [path])
        raise UserError(f"{path}: extends forms a cycle: {cycle}")
    if not os.path.isfile(path):
        raise UserError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise UserError(f"{path}: extends: expected a file name, got {base_name!r}")
    base_path = os.path.join(os.path.dirname(path), base_name)
    base = read_config_file(base_path, _chain + (path,))
    return merge_configs(base, data)


def merge_configs(base, update):
    """Deep-merges ``update`` into a copy of ``base`` (``update`` wins).

    A ``name`` change in a dispatch section (optimizer, schedule) replaces the whole section.
    """
    merged = copy.deepcopy(base)
    for key, value in update.items():
        old = merged.get(key)
        spec = SCHEMA.get(key)
        restart = (
            isinstance(spec, DispatchSection)
            and isinstance(old, dict)
            and isinstance(value, dict)
            and "name" in value
            and value["name"] != old.get("name", spec.default)
        )
        if isinstance(old, dict) and isinstance(value, dict) and not restart:
            merged[key] = _merge_dicts(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_dicts(base, update):
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _merge_dicts(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text):
    """Splits ``"a.b=value"`` into ``(["a", "b"], parsed value)``.

    The value is parsed with ``yaml.safe_load`` (``3`` → int, ``[a, b]`` → list, ``null`` → None);
    an empty value is the empty string.
    """
    key, sep, value_text = str(text).partition("=")
    key = key.strip()
    keys = key.split(".")
    if not sep or not key or any(not k or not re.fullmatch(r"[A-Za-z_][\w-]*", k) for k in keys):
        raise UserError(
            f"--set {text}: expected KEY.PATH=VALUE with a dotted key such as "
            f"optimizer.learning_rate=1.0e-4"
        )
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError as err:
        raise UserError(f"--set {text}: the value is not valid YAML: {err}") from None
    return keys, value


def set_path(config, keys, value, source="--set", schema=SCHEMA):
    """Sets ``config[k0][k1]... = value``, creating sections that are missing or null."""
    node = config
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            path = ".".join(keys[: depth + 1])
            raise UserError(f"{source}: {path} is {child!r}, not a section; cannot set a key in it")
        node = child
    last = keys[-1]
    spec = schema.get(keys[0]) if len(keys) == 2 else None
    if (
        isinstance(spec, DispatchSection)
        and last == "name"
        and value != node.get("name", spec.default)
    ):
        node.clear()  # another optimizer/schedule: the previous one's keys do not apply
    node[last] = value


def resolve_config(config, source="config", overridden=None, *, schema=SCHEMA, scalars=SCALARS):
    """Validates a raw config and returns the resolved one.

    Args:
        config: dict, as read from YAML (``extends`` already merged).
        source: str, the file name used in error messages.
        overridden: dict ``"a.b"`` -> the ``--set`` text that set it, to name it in errors.
        schema: dict section name -> ``Section`` or ``DispatchSection`` (default: the scene
            classifier's; ``keras_asc.irgen.config`` passes the generator's).
        scalars: dict top-level key -> ``(default, check)``.

    Returns:
        dict with every scalar and section, in schema order; defaults filled in for the
        sections that own their defaults; tuples turned into lists (YAML-safe).

    Raises:
        UserError: unknown key, missing required key, wrong type or value.
    """
    overridden = overridden or {}

    def where(path):
        for key, text in overridden.items():
            if path == key or path.startswith(key + ".") or key.startswith(path + "."):
                return f"--set {text}"
        return source

    if not isinstance(config, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(config).__name__}")
    known = list(scalars) + list(schema)
    for key in config:
        if key not in known:
            raise UserError(_unknown(where(key), str(key), known))
    resolved = {}
    for key, (default, check) in scalars.items():
        value = config.get(key, default)
        _check_value(where(key), key, value, check)
        resolved[key] = value
    for name, spec in schema.items():
        value = config.get(name, None if spec.nullable else {})
        if value is None and spec.nullable:
            resolved[name] = None
            continue
        if value is None:
            value = {}
        if not isinstance(value, dict):
            expected = "a mapping" + (" or null" if spec.nullable else "")
            raise UserError(f"{where(name)}: {name}: got {value!r}; expected {expected}")
        if isinstance(spec, DispatchSection):
            choice_name = value.get("name", spec.default)
            if choice_name not in spec.options:
                options = ", ".join(repr(o) for o in spec.options)
                raise UserError(
                    f"{where(name + '.name')}: {name}.name: got {choice_name!r}; "
                    f"expected one of {options}"
                )
            body = {k: v for k, v in value.items() if k != "name"}
            section = _resolve_section(spec.options[choice_name], body, name, where)
            resolved[name] = {"name": choice_name, **section}
        else:
            resolved[name] = _resolve_section(spec, value, name, where)
    return resolved


def _resolve_section(spec, values, prefix, where):
    fields = spec.fields()
    for key in values:
        if key not in fields:
            raise UserError(_unknown(where(f"{prefix}.{key}"), f"{prefix}.{key}", list(fields)))
    out = {}
    for key, (default, check) in fields.items():
        path = f"{prefix}.{key}"
        if key in values:
            value = _yaml_safe(values[key])
            _check_value(where(path), path, value, check)
            if isinstance(check, Nested) and value is not None:
                value = _resolve_section(check.section, value, path, where)
            out[key] = value
        elif default is inspect.Parameter.empty:
            raise UserError(f"{where(path)}: {path}: missing; expected {check.expected}")
        elif spec.fill_defaults:
            out[key] = _yaml_safe(default)
    return out


def _yaml_safe(value):
    if isinstance(value, tuple | list):
        return [_yaml_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _yaml_safe(v) for k, v in value.items()}
    return value


def _check_value(source, path, value, check):
    problem = check(value)
    if problem is None:
        return
    hint = ""
    if isinstance(value, str) and _FLOAT_LOOKING.match(value):
        hint = " (YAML reads a number without a dot as a string: write e.g. 1.0e-5)"
    raise UserError(f"{source}: {path}: got {value!r}; expected {problem}{hint}")


def _unknown(source, path, known):
    key = path.rsplit(".", 1)[-1]
    message = f"{source}: {path}: unknown key; expected one of {', '.join(sorted(known))}"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message


def dump_config(config):
    """The YAML text of a config (section order kept)."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def save_config(config, path):
    """Writes ``config`` as YAML to ``path`` atomically (temp file, then rename)."""
    atomic_write_text(path, dump_config(config))


def config_differences(a, b, ignore=()):
    """Dotted key paths whose values differ between two resolved configs.

    Args:
        a, b: dicts.
        ignore: key paths (``"training.epochs"``) or section names (``"wandb"``) to skip.

    Returns:
        sorted list of dotted paths.
    """
    diffs = []

    def walk(x, y, prefix):
        if prefix in ignore:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{prefix}.{key}" if prefix else key)
        elif x != y:
            diffs.append(prefix)

    walk(a, b, "")
    return diffs

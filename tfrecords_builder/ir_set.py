"""The skeleton of an impulse-response set builder (MicIRP, Surrey): discover → process → write.

A set fills three parts; :func:`build` does the rest the same way for every set (the source
checks, the free-space check, the worker pool, the records, the skipped items, ``info.json``):

* its **processing options**: a :class:`Processing` dataclass whose fields are the build's
  keyword arguments; the command's ``--flags`` are made from the fields (:meth:`add_arguments`,
  :meth:`from_args`), and the fields validate themselves when the options are made;
* **discover** (:meth:`IRSet.discover`): the IRs to store, as worker tasks of :class:`Planned`
  records (name, metadata and stored length known before any audio is decoded);
* **process**: a module-level function ``(source root, [relative path], processing) →
  (entries, extra)`` run in worker processes that never import TensorFlow, one entry per path:
  ``{"ok": True, "ir", "source_sample_rate", "source_num_samples", "md5", ...}`` or
  ``{"ok": False, "reason"}``; and **info** (:meth:`IRSet.account`, :meth:`IRSet.info`): the set's
  own sections of ``info.json``.

Library errors name keyword arguments (``length``); the command line (:func:`run`) names the flags
(``--length``) instead.
"""

import dataclasses
import os
import string

import numpy as np

from asc_core import vocab
from asc_core.audio import read_audio
from asc_core.audio import resample
from asc_core.errors import UserError
from asc_core.writer import ON_ERROR_CHOICES
from tfrecords_builder import ir_processing as irp


class ParameterError(UserError):
    """A bad build parameter, in words that fit the caller.

    Args:
        template: the message; ``{name}`` spells a parameter (a keyword argument here, a flag in
            :meth:`flags`), ``{0}``, ``{1}``, ... are ``values`` (inserted verbatim).
        values: the values the message quotes.
    """

    def __init__(self, template, *values):
        self.template, self.values = template, values
        super().__init__(self._render(lambda name: name))

    def flags(self):
        """The message with ``--flag`` names, for the command line."""
        return self._render(lambda name: "--" + name.replace("_", "-"))

    def _render(self, spell):
        fields = string.Formatter().parse(self.template)
        names = {name for _, name, _, _ in fields if name and not name.isdigit()}
        return self.template.format(*self.values, **{name: spell(name) for name in names})


def option(default, help, choices=None):
    """A :class:`Processing` field: its default, command-line help and allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class Processing:
    """What is done to every IR: resampling to ``sample_rate`` (soxr HQ) times the resampling
    gain (:func:`tfrecords_builder.ir_processing.resampling_gain`), then the level rule.

    Subclasses add their options. Each field is a keyword argument of the build and a flag of
    its command; a bad value raises :class:`ParameterError` here, before anything is read.
    """

    sample_rate: int = option(
        vocab.SAMPLE_RATE,
        f"rate of the stored IRs in Hz (default {vocab.SAMPLE_RATE}, the model's rate)",
    )
    resample_gain: str = option(
        "filter",
        "filter (default): keep the IR's frequency response and level across the rate change; "
        "signal: keep the resampled sample values (librosa/CPJKU)",
        irp.RESAMPLE_GAINS,
    )
    normalize: str = option(
        "none",
        "level rule: none (raw level), peak (max abs 1), energy (sum of squares 1)",
        irp.NORMALIZATIONS,
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            choices, value = field.metadata["choices"], getattr(self, field.name)
            if choices is not None and value not in choices:
                raise ParameterError(
                    f"{{{field.name}}} {{0!r}} is not valid; expected one of {', '.join(choices)}",
                    value,
                )
        for ok, template, value in self.checks():
            if not ok:
                raise ParameterError(template, value)

    def checks(self):
        """``(ok, template, value)`` of each range rule (``template`` as in ParameterError)."""
        return [(self.sample_rate > 0, "{sample_rate} must be > 0 Hz, got {0}", self.sample_rate)]

    @classmethod
    def add_arguments(cls, parser):
        """Adds a ``--flag`` per field to an argparse parser."""
        for field in dataclasses.fields(cls):
            kwargs = {"default": field.default, "help": field.metadata["help"]}
            if isinstance(field.default, bool):
                kwargs["action"] = "store_true"
            elif field.metadata["choices"] is not None:
                kwargs["choices"] = field.metadata["choices"]
            else:
                kwargs["type"] = type(field.default)
            parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)

    @classmethod
    def from_args(cls, args):
        """The options given on the command line (parsed by :meth:`add_arguments`)."""
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})


def read_resampled(path, processing, *, mono="require", expected_rate=None):
    """Reads one IR file, resamples it to ``processing.sample_rate`` and applies the gain.

    Returns:
        ``(ir, audio, rate)``: float64 ``[n]`` at the target rate, the file's float32 samples
        and its own rate.

    Raises:
        UserError: unreadable, wrong channels or rate (:func:`asc_core.audio.read_audio`), or
            below the target rate (upsampling cannot restore the missing band).
    """
    audio, rate = read_audio(path, mono=mono, expected_rate=expected_rate)
    target = processing.sample_rate
    if rate < target:
        raise UserError(
            f"audio file {path} has sample rate {rate} Hz; expected at least {target} Hz "
            "(an IR cannot be upsampled without losing its top band)"
        )
    ir = resample(audio, rate, target).astype(np.float64)
    ir *= irp.resampling_gain(rate, target, processing.resample_gain)
    return ir, audio, rate


@dataclasses.dataclass(frozen=True)
class Planned:
    """One IR to store, as known before it is decoded.

    Attributes:
        name: its path relative to the source, ``/``-separated (the record's ``name``).
        metadata: the other keyword arguments of ``encode_dir_example`` (microphone, ...).
        samples: the stored length; None when unknown (then it counts nothing in the
            free-space check: the file fails, or is skipped, in its turn).
        source_rate: the expected source rate (its varint length is part of the record's).
    """

    name: str
    metadata: dict
    samples: int | None
    source_rate: int


class IRSet:
    """What a set fills in (see the module docstring); one instance per build.

    Attributes of a subclass: ``BUILDER`` (the command), ``SET_NAME`` (the records' ``set``),
    ``SOURCE_HINT`` (what ``source`` should hold), ``Processing`` (its options), ``process`` (the
    worker function, as a staticmethod), ``TASK_UNIT`` (for the progress bar).
    """

    BUILDER = SET_NAME = SOURCE_HINT = ""
    TASK_UNIT = "file"
    Processing = Processing

    def __init__(self, source, processing, policy):
        self.source, self.processing, self.policy = source, processing, policy
        self.checksums, self.rates = {}, {}

    @classmethod
    def add_selection_arguments(cls, parser):
        """Adds the set's options that are not processing (which files to take)."""

    @classmethod
    def selection_from_args(cls, args):
        """The keyword arguments of the set's constructor given on the command line."""
        return {}

    def discover(self, paths, ignored):
        """The worker tasks: a list of ``[Planned]`` (bad files go to ``self.policy``)."""
        raise NotImplementedError

    def account(self, planned, entry):
        """Counts one written IR (``entry`` from the worker)."""

    def account_task(self, task, entries, extra):
        """Counts one task once its IRs are written (``entries``: the written ones)."""

    def info(self):
        """The set's sections of ``info.json`` (between ``source`` and the checksums)."""
        raise NotImplementedError


def build(cls, source, out, processing, *, shards=1, workers=0, on_error="raise", **selection):
    """Builds the DIR TFRecords of the IR set ``cls`` (see the module docstring).

    Args:
        cls: the :class:`IRSet` subclass.
        source: the folder tree holding its ``.wav`` files.
        out: output folder (replaced only when the build is complete).
        processing: a ``cls.Processing``.
        shards: number of TFRecord files.
        workers: decoding processes; None uses every CPU core, 0 decodes in this process.
        on_error: ``raise`` or ``skip``.
        selection: keyword arguments of ``cls`` (which files to take).

    Returns:
        the output folder path.

    Raises:
        UserError: no IRs under ``source`` (or none left after skipping), a bad file with
            ``on_error="raise"``, or less free space than the records need (checked first).
    """
    from asc_core.example import encode_dir_example
    from asc_core.progress import progress
    from asc_core.tfrecord import FRAME_BYTES
    from asc_core.writer import ErrorPolicy
    from asc_core.writer import OutputDir
    from asc_core.writer import check_free_space
    from tfrecords_builder.parallel import default_workers
    from tfrecords_builder.parallel import ordered_map

    if shards < 1:
        raise ParameterError("{shards} must be at least 1, got {0}", shards)
    policy = ErrorPolicy(on_error)
    ir_set = cls(source, processing, policy, **selection)
    if not os.path.isdir(source):
        raise ParameterError(
            "{source} {0} is not a folder; expected the folder holding the IRs", source
        )
    paths, ignored = irp.find_wavs(source)
    if not paths:
        raise ParameterError(
            "{source} {0} holds no .wav files; expected " + cls.SOURCE_HINT, source
        )
    tasks = ir_set.discover(paths, ignored)
    rate = processing.sample_rate

    def record(ir, planned, source_rate):
        return encode_dir_example(
            ir,
            name=planned.name,
            set=cls.SET_NAME,
            source_sample_rate=source_rate,
            sample_rate=rate,
            **planned.metadata,
        )

    planned = [p for task in tasks for p in task if p.samples is not None]
    needed = sum(
        FRAME_BYTES + len(record(np.zeros(max(p.samples, 1), np.float32), p, p.source_rate))
        for p in planned
    )
    check_free_space(out, needed, cls.BUILDER)
    source_root = os.fspath(source)
    items = [(source_root, [p.name for p in task], processing) for task in tasks]
    workers = min(default_workers() if workers is None else workers, len(items))
    with OutputDir(out, builder=cls.BUILDER, policy=policy) as output:
        writer = output.sharded_writer("dirs", shards)
        results = zip(tasks, ordered_map(cls.process, items, workers))
        bar = progress(results, total=len(tasks), desc=cls.BUILDER, unit=cls.TASK_UNIT)
        for task, (entries, extra) in bar:
            written = []
            for planned_ir, entry in zip(task, entries):
                if not entry["ok"]:
                    policy.fail("dirs", planned_ir.name, entry["reason"])
                    continue
                writer.write(record(entry["ir"], planned_ir, entry["source_sample_rate"]))
                ir_set.checksums[planned_ir.name] = entry["md5"]
                rate_key = str(entry["source_sample_rate"])
                ir_set.rates[rate_key] = ir_set.rates.get(rate_key, 0) + 1
                ir_set.account(planned_ir, entry)
                written.append(entry)
            ir_set.account_task(task, written, extra)
        if writer.num_examples == 0:
            raise ParameterError(
                "no usable IRs under {source} {0}: all {1} files were skipped (first: {2})",
                source,
                len(paths),
                policy.skipped[0]["reason"],
            )
        info = {
            "set": cls.SET_NAME,
            "sample_rate": rate,
            "num_examples": writer.num_examples,
            "shards": list(writer.names),
            "shard_counts": list(writer.counts),
            "source": os.path.abspath(source_root),
            **ir_set.info(),
            "source_checksums": ir_set.checksums,
            "source_digest": irp.combined_digest(ir_set.checksums),
        }
        return output.finish(info)


# === Command ===

_WORKERS_HELP = "decoding processes (default: the CPU cores; 0 decodes in this process)"
_SKIP_HELP = "raise (default) stops at the first bad file; skip leaves it out and reports it"


def add_arguments(parser, cls, source_help, workers=True):
    """Adds the arguments of ``cls``'s command to an argparse parser."""
    parser.add_argument("--source", required=True, help=source_help)
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    cls.add_selection_arguments(parser)
    cls.Processing.add_arguments(parser)
    parser.add_argument("--shards", type=int, default=1, help="number of TFRecord files")
    if workers:
        parser.add_argument("--workers", type=int, default=None, help=_WORKERS_HELP)
    parser.add_argument("--on-error", choices=ON_ERROR_CHOICES, default="raise", help=_SKIP_HELP)


def run(cls, args):
    """Runs ``cls``'s command from parsed arguments; bad parameters are named by their flags."""
    try:
        out = build(
            cls,
            args.source,
            args.out,
            cls.Processing.from_args(args),
            shards=args.shards,
            workers=getattr(args, "workers", 0),
            on_error=args.on_error,
            **cls.selection_from_args(args),
        )
    except ParameterError as err:
        raise UserError(err.flags()) from None
    print(f"wrote {out}")
    return 0

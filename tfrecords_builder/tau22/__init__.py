"""``tau22``: TAU Urban Acoustic Scenes 2022 Mobile (development or evaluation set) → TFRecords.

Input: the extracted dataset folder (``meta.csv`` and/or ``evaluation_setup/`` at the top or one
folder down), TAB-separated CSVs with headers. Splits:

* ``evaluation_setup/fold1_train.csv`` → ``train``; ``fold1_evaluate.csv`` → ``evaluate``;
* ``fold1_test.csv`` → ``test``. In the development set it lists exactly the files of
  ``fold1_evaluate.csv`` without labels; it is then recorded as an alias of ``evaluate``
  (``info.json`` ``aliases``) instead of being written twice. When it lists other files (an
  evaluation set, which has no ``fold1_evaluate.csv``) it is written as its own split;
* each ``--split-file NAME.csv`` (e.g. the DCASE2024 subsets ``split5.csv``) → split ``NAME``.

Labels come from the split CSV's ``scene_label`` and from ``meta.csv`` (``scene_label``,
``identifier`` = ``<city>-<location>``, ``source_label`` = device); the segment id, the 1-s index
and (without ``meta.csv``) the device/city/location come from the file name
``<scene>-<city>-<location>-<segment>-<index>-<device>.wav``. Anonymised evaluation files
(``audio/<int>.wav``, ``filename`` column only) are kept unlabelled (``""`` and -1).

Each split is written twice: the ``1s`` view (one record per file, resampled 44.1 → 32 kHz,
32000 samples) and, where names carry a segment, the ``10s`` view: the ten 1-s parts of one
recording (same name without the index, grouped only within the split) concatenated in index
order at 44.1 kHz and resampled as one signal (320000 samples; no filter edges at the joins).
A recording without exactly the parts 0..9 is an error; with ``--on-error skip`` it is left out
of the 10s view and reported (its parts stay in the 1s view). Nothing is ever padded.

Records are stored in a pseudo-random order fixed by ``--seed`` (recordings of one scene are
not adjacent) and go round-robin over the shards of their split and view. The waveforms are
stored as resampled, not clipped (what ``librosa.load(path, sr=32000)`` gives the reference
code). The length of every record is known before any audio is decoded, so the main process
places each planned record (shard and byte offset) up front, and the worker processes, which
never import TensorFlow, decode, resample, encode and write their records straight into the
shards (:mod:`asc_core.tfrecord_io`); only a few bytes of status come back per
recording. The shards are therefore byte-identical for any ``--workers``. A record skipped with
``--on-error skip`` leaves a gap that is closed at the end: its shard is one record shorter. The
same lengths give the bytes of the whole build, which are checked against the free space of the
output's filesystem before anything is written (:func:`asc_core.writer.check_free_space`).
The workers start (and import their modules) while the main process plans the CSVs.
"""

from tfrecords_builder.tau22.builder import build
from tfrecords_builder.tau22.builder import summary
from tfrecords_builder.tau22.plan import Clip
from tfrecords_builder.tau22.plan import SplitPlan
from tfrecords_builder.tau22.source import CLIP_SAMPLES
from tfrecords_builder.tau22.source import CLIP_SECONDS
from tfrecords_builder.tau22.source import PARTS
from tfrecords_builder.tau22.source import SOURCE_RATE
from tfrecords_builder.tau22.source import find_root
from tfrecords_builder.tau22.source import parse_name

__all__ = [
    "CLIP_SAMPLES",
    "CLIP_SECONDS",
    "PARTS",
    "SOURCE_RATE",
    "Clip",
    "SplitPlan",
    "build",
    "find_root",
    "parse_name",
    "summary",
]

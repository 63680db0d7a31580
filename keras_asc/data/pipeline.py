"""``tf.data`` input pipelines over the audio TFRecords of the ``tau22`` builder.

Training reads the reassembled 10-s recordings (view ``10s``) and cuts a random 1-s window from
each one (the paper's "merge recordings to 10 s snippets and extract randomly sliding windows of
1 s"); the window always lies inside the recording and is not aligned to the 1-s clip
boundaries. Evaluation reads the 1-s clips (view ``1s``) in file order.

Elements are ``(waveform [B, window], {"scene": [B], "device": [B]})`` (int32 labels indexing
``vocab.SCENES`` / ``vocab.DEVICES``), or ``(waveform, scene)`` with ``targets="scene"``.

Reproducibility: every random choice of epoch ``e`` (shard order, shuffle, windows, rolls,
balanced sampling) is a function of ``(seed, e)`` alone, so the data of epoch 5 are the same in a
run that was stopped after epoch 4 and resumed. :func:`make_datasets` returns a training dataset
that starts at a given epoch and yields exactly ``steps_per_epoch`` batches per epoch.
"""

import numpy as np
import tensorflow as tf

from asc_core import vocab
from asc_core.errors import UserError
from asc_core.tfrecord import data_loss_error
from keras_asc.data.schema import parse_audio_example
from keras_asc.data.shards import check_shards
from keras_asc.data.shards import read_info
from keras_asc.data.shards import shard_files

AUTOTUNE = tf.data.AUTOTUNE
# Large odd constant mixing (seed, epoch) into one stateless seed; any fixed value works.
_EPOCH_MIX = 1_000_003


class Datasets:
    """What :func:`make_datasets` returns.

    Attributes:
        train_epochs: ``callable(initial_epoch, epochs) -> tf.data.Dataset`` yielding
            ``steps_per_epoch`` batches for each epoch in ``[initial_epoch, epochs)``.
        train_epoch: ``callable(epoch) -> tf.data.Dataset``, the batches of one epoch.
        eval: ``tf.data.Dataset`` over the evaluation clips (fixed order, last batch kept).
        steps_per_epoch: int, training batches per epoch.
        num_train_examples: int, training recordings (before ``windows_per_recording``).
        num_eval_examples: int, evaluation clips.
        sample_rate: int, the audio sample rate of the TFRecords.
        files: list of str, every shard read (to name one in a data-loss error).
    """

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def _epoch_seed(seed, epoch, salt):
    """A stateless seed pair ``[2]`` for (seed, epoch, salt); epoch may be a tensor."""
    epoch = tf.cast(epoch, tf.int64)
    return tf.stack([tf.constant(seed, tf.int64) * _EPOCH_MIX + epoch, tf.constant(salt, tf.int64)])


def _labels(features):
    return {
        "scene": tf.cast(features["scene_id"], tf.int32),
        "device": tf.cast(features["device_id"], tf.int32),
    }


def random_window(waveform, window_samples, seed):
    """A random ``window_samples`` slice of a 1-D waveform, lying inside it.

    Args:
        waveform: float tensor ``[num_samples]``.
        window_samples: int, the window length.
        seed: int tensor ``[2]``, stateless seed.

    Returns:
        float tensor ``[window_samples]``; the waveform zero-padded at the end when it is
        shorter than the window (offset 0).

    Example:

    >>> window = random_window(tf.range(10.0), 4, tf.constant([1, 2], tf.int64))
    >>> bool(window[0] <= 6) and window.numpy().tolist() == list(window[0] + np.arange(4.0))
    True
    >>> random_window(tf.ones([2]), 4, tf.constant([1, 2], tf.int64)).numpy().tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    num_samples = tf.shape(waveform, out_type=tf.int64)[0]
    max_offset = tf.maximum(num_samples - window_samples, 0)
    offset = tf.random.stateless_uniform(
        [], seed=seed, minval=0, maxval=max_offset + 1, dtype=tf.int64
    )
    window = waveform[offset : offset + window_samples]
    pad = window_samples - tf.shape(window, out_type=tf.int64)[0]
    window = tf.pad(window, [[0, pad]])
    return tf.ensure_shape(window, [window_samples])


def _format(waveform, labels, targets):
    if targets == "scene":
        return waveform, labels["scene"]
    return waveform, labels


def make_train_dataset(path, split="train", batch_size=64, *, view="10s", **options):
    """The training batches of one epoch.

    Every keyword argument but ``view`` is passed on to the batching; the defaults: epoch 0,
    one 1-s window per recording, ``shuffle_buffer`` 2048, no device balancing, no roll,
    ``targets="dict"``, all recordings, every window once, seed 0.

    Args:
        path: TFRecord folder of the ``tau22`` builder.
        split: split name (``train``).
        batch_size: int, examples per batch (the remainder is dropped: static shapes).
        epoch: int or int tensor, the epoch whose random draws to make.
        view: ``"10s"`` (reassembled recordings, the paper) or ``"1s"`` (the clips).
        window_samples: int, samples per training example (32000 = 1 s).
        windows_per_recording: int, independent random windows cut from each recording per
            epoch (1: an epoch sees each recording once).
        shuffle_buffer: int, windows per shuffle block (see :func:`block_shuffle`), after the
            shard order is shuffled.
        device_balanced: bool, resample so every device present is equally likely
            (stateless rejection sampling over the repeated recording stream).
        device_counts: ``[len(vocab.DEVICES)]`` recordings per device; needed with
            ``device_balanced`` (the devices with a non-zero count are the target).
        roll_samples: int, circular time roll of each window by up to ± this many samples
            (0: off).
        targets: ``"dict"`` → ``{"scene", "device"}`` labels; ``"scene"`` → scene ids only.
        max_examples: int or None, use only the first N recordings (smoke runs).
        steps: int or None, number of batches; None: every window once (drop remainder).
            With ``device_balanced`` it is required.
        seed: int, the run seed.

    Returns:
        ``tf.data.Dataset`` of ``(waveform [B, window_samples] float32, labels)``.
    """
    return _train_batches(shard_files(path, split, view), batch_size, **options)


def _train_batches(
    files,
    batch_size,
    *,
    epoch=0,
    window_samples=vocab.SAMPLE_RATE,
    windows_per_recording=1,
    shuffle_buffer=2048,
    device_balanced=False,
    device_counts=None,
    roll_samples=0,
    targets="dict",
    max_examples=None,
    steps=None,
    seed=0,
):
    """:func:`make_train_dataset` on resolved shard paths (no Python I/O: safe inside tracing);
    :func:`make_train_dataset` documents the keyword arguments."""
    # Every random draw below is stateless, keyed by (seed, epoch, salt): the epoch can be a
    # tensor (the epochs are generated inside one dataset) and a resumed run sees the same data.
    file_order = tf.random.experimental.stateless_shuffle(
        tf.constant(files), seed=_epoch_seed(seed, epoch, 1)
    )
    records = tf.data.Dataset.from_tensor_slices(file_order).interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if max_examples is not None:
        # The first N in file order, so a subset holds the same recordings every epoch.
        records = tf.data.TFRecordDataset(files).take(max_examples)

    def parse(index, serialized):
        features = parse_audio_example(serialized)
        return index, features["audio"], _labels(features)

    if device_balanced:
        if steps is None or device_counts is None:
            raise ValueError("device_balanced needs steps and device_counts")
        # Rejection sampling: keep a recording of device d with probability
        # (target_d / share_d) / max over devices, which makes the kept stream uniform over the
        # devices present. The stream repeats, so `steps` batches always exist.
        counts = np.asarray(device_counts, dtype=np.float64)
        share = counts / counts.sum()
        ratio = np.where(counts > 0, 1.0 / np.maximum(share, 1e-12), 0.0)
        accept = tf.constant(ratio / ratio.max(), tf.float32)
        salt = _epoch_seed(seed, epoch, 2)[0]

        def keep(index, serialized):
            device = tf.io.parse_single_example(
                serialized, {"device_id": tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
            )["device_id"]
            u = tf.random.stateless_uniform([], seed=tf.stack([salt, index]))
            return (device >= 0) & (u < tf.gather(accept, tf.maximum(device, 0)))

        records = records.repeat().enumerate().filter(keep).map(lambda i, r: r)

    recordings = records.enumerate().map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)

    def windows(index, audio, labels):
        # One stateless seed per (epoch, recording, window): independent of thread timing.
        seeds = tf.random.experimental.stateless_split(
            tf.stack([_epoch_seed(seed, epoch, 3)[0], index]), windows_per_recording + 1
        )
        cut = tf.map_fn(
            lambda s: random_window(audio, window_samples, s),
            seeds[:windows_per_recording],
            fn_output_signature=tf.TensorSpec([window_samples], tf.float32),
        )
        if roll_samples:
            shifts = tf.random.stateless_uniform(
                [windows_per_recording],
                seed=seeds[-1],
                minval=-roll_samples,
                maxval=roll_samples + 1,
                dtype=tf.int32,
            )
            cut = tf.map_fn(
                lambda a: tf.roll(a[0], a[1], axis=0),
                (cut, shifts),
                fn_output_signature=tf.TensorSpec([window_samples], tf.float32),
            )
        repeated = {k: tf.repeat(v[None], windows_per_recording) for k, v in labels.items()}
        return cut, repeated

    examples = recordings.map(windows, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    examples = block_shuffle(examples, shuffle_buffer, _epoch_seed(seed, epoch, 5)[0])
    batches = examples.batch(batch_size, drop_remainder=True)
    if steps is not None:
        batches = batches.repeat().take(steps)
    return batches.map(lambda w, lab: _format(w, lab, targets))


def block_shuffle(dataset, block_size, seed):
    """Shuffles ``dataset`` within consecutive blocks of ``block_size`` elements.

    ``Dataset.shuffle`` needs a Python seed; this stateless variant takes a tensor seed (the
    permutation of block ``k`` is keyed by ``(seed, k)``), so it works on a per-epoch dataset
    built inside ``flat_map``. With the shard order shuffled and shards interleaved first, a
    block of a few thousand windows mixes recordings from many shards.

    Args:
        dataset: unbatched ``tf.data.Dataset``.
        block_size: int, elements per block (memory: one block of elements).
        seed: int64 scalar (tensor), the stateless seed.

    Returns:
        ``tf.data.Dataset`` with the same elements, permuted inside each block.
    """

    def permute(index, block):
        size = tf.shape(tf.nest.flatten(block)[0])[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(size), seed=tf.stack([tf.cast(seed, tf.int64), index])
        )
        return tf.nest.map_structure(lambda t: tf.gather(t, order), block)

    return dataset.batch(block_size).enumerate().map(permute).unbatch()


def make_eval_dataset(
    path, split="evaluate", batch_size=64, *, targets="dict", max_examples=None, num_samples=None
):
    """Evaluation batches over the 1-s clips, in file order.

    Args:
        path: TFRecord folder of the ``tau22`` builder.
        split: split name (``evaluate``).
        batch_size: int; the last batch may be smaller.
        targets: ``"dict"`` or ``"scene"`` (see :func:`make_train_dataset`).
        max_examples: int or None, only the first N clips.
        num_samples: int or None, the clip length when known (faster dense parsing).

    Returns:
        ``tf.data.Dataset`` of ``(waveform [B, samples] float32, labels)``.
    """
    files = shard_files(path, split, "1s")
    records = tf.data.TFRecordDataset(files)
    if max_examples is not None:
        records = records.take(max_examples)

    def parse(serialized):
        features = parse_audio_example(serialized, num_samples=num_samples)
        audio = features["audio"]
        if isinstance(audio, tf.RaggedTensor):
            audio = audio.to_tensor()
        return _format(audio, _labels(features), targets)

    return records.batch(batch_size).map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)


def make_datasets(
    path,
    train_split="train",
    eval_split="evaluate",
    batch_size=64,
    eval_batch_size=None,
    train_view="10s",
    window_samples=vocab.SAMPLE_RATE,
    windows_per_recording=1,
    shuffle_buffer=2048,
    device_balanced=False,
    roll_samples=0,
    targets="auto",
    max_train_examples=None,
    max_eval_examples=None,
    seed=0,
):
    """Training and evaluation datasets from one ``tau22`` TFRecord folder (the ``data:`` config).

    Args:
        path: str, the TFRecord folder.
        train_split, eval_split: split names.
        batch_size: int, training batch size (global batch under a distribution strategy).
        eval_batch_size: int or None (None: ``batch_size``).
        train_view: ``"10s"`` (random windows from reassembled recordings) or ``"1s"``.
        window_samples, windows_per_recording, shuffle_buffer, device_balanced, roll_samples,
        targets: see :func:`make_train_dataset`; ``"auto"`` is resolved by the runner (device
            labels when the config uses ICL or DIR augmentation) and means ``"dict"`` here.
            ``targets`` applies to the training batches; the evaluation batches always carry
            ``{"scene", "device"}``.
        max_train_examples, max_eval_examples: int or None, truncate the splits (smoke runs).
        seed: int, the run seed.

    Returns:
        :class:`Datasets`.

    Raises:
        UserError: missing folder, missing or empty split, or fewer windows than one batch.
    """
    train_files = shard_files(path, train_split, train_view)
    eval_files = shard_files(path, eval_split, "1s")
    info = read_info(path)
    # A broken shard is named now, not as a TensorFlow error hours into the run.
    _check_labelled(path, info, train_split, train_view)
    num_train = check_shards(train_files, info, train_split, train_view)
    num_eval = check_shards(eval_files, info, eval_split, "1s")
    if max_train_examples is not None:
        num_train = min(num_train, max_train_examples)
    if max_eval_examples is not None:
        num_eval = min(num_eval, max_eval_examples)
    if num_train == 0:
        raise UserError(f"data.path {path}: split {train_split!r} view {train_view!r} is empty")
    if num_eval == 0:
        raise UserError(f"data.path {path}: split {eval_split!r} view '1s' is empty")
    steps = (num_train * windows_per_recording) // batch_size
    if steps == 0:
        raise UserError(
            f"data.batch_size {batch_size}: larger than the {num_train * windows_per_recording} "
            f"training windows of {path} split {train_split!r}; expected at most that many"
        )
    sample_rate = int((info or {}).get("sample_rate", vocab.SAMPLE_RATE))
    if targets == "auto":
        targets = "dict"
    device_counts = None
    if device_balanced:
        try:
            device_counts = _device_counts(train_files, max_train_examples)
        except tf.errors.DataLossError as err:
            raise data_loss_error(err, train_files) from None

    def train_epoch(epoch, steps_per_epoch=None):
        return _train_batches(
            train_files,
            batch_size,
            epoch=epoch,
            window_samples=window_samples,
            windows_per_recording=windows_per_recording,
            shuffle_buffer=shuffle_buffer,
            device_balanced=device_balanced,
            device_counts=device_counts,
            roll_samples=roll_samples,
            targets=targets,
            max_examples=max_train_examples,
            steps=steps_per_epoch or (steps if device_balanced else None),
            seed=seed,
        )

    def train_epochs(initial_epoch, epochs, steps_per_epoch=None):
        per_epoch = steps_per_epoch or steps
        dataset = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
            tf.autograph.experimental.do_not_convert(lambda e: train_epoch(e, per_epoch))
        )
        options = tf.data.Options()
        options.deterministic = True
        # Shard by element under multi-worker training: shard files may be fewer than workers.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality((epochs - initial_epoch) * per_epoch)
        )
        return dataset.with_options(options).prefetch(2)

    eval_dataset = make_eval_dataset(
        path,
        eval_split,
        eval_batch_size or batch_size,
        targets="dict",  # validation reports per device, whatever the training targets
        max_examples=max_eval_examples,
    )
    eval_batches = -(-num_eval // (eval_batch_size or batch_size))
    # A known length lets Keras' predict/progress bar end cleanly.
    eval_dataset = eval_dataset.apply(tf.data.experimental.assert_cardinality(eval_batches))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    eval_dataset = eval_dataset.with_options(options).prefetch(2)
    return Datasets(
        train_epochs=train_epochs,
        train_epoch=train_epoch,
        eval=eval_dataset,
        steps_per_epoch=steps,
        num_train_examples=num_train,
        num_eval_examples=num_eval,
        sample_rate=sample_rate,
        files=train_files + eval_files,
    )


def _check_labelled(path, info, split, view):
    """Refuses training records without a scene label (scene id -1), as info.json counts them.

    Without this, training stops inside TensorFlow with "Received a label value of -1".
    """
    try:
        counts = info["splits"][split]["views"][view]["counts"]
        unlabelled = sum(row.get("unknown", 0) for row in counts.values())
    except (KeyError, TypeError, AttributeError):
        return
    if unlabelled:
        raise UserError(
            f"data.path {path}: {unlabelled} records of split {split!r} view {view!r} have no "
            "scene label (info.json counts them under scene 'unknown'); expected a labelled "
            "training split (rebuild it from CSVs with scene_label)"
        )


def _device_counts(files, max_examples):
    """Recordings per device id ``[len(vocab.DEVICES)]`` (reads the device ids once)."""
    records = tf.data.TFRecordDataset(files)
    if max_examples is not None:
        records = records.take(max_examples)
    spec = {"device_id": tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    ids = records.batch(1024).map(lambda s: tf.io.parse_example(s, spec)["device_id"])
    counts = np.zeros(len(vocab.DEVICES), np.int64)
    for batch in ids.as_numpy_iterator():
        batch = batch[batch >= 0]
        counts += np.bincount(batch, minlength=len(vocab.DEVICES))[: len(vocab.DEVICES)]
    return counts

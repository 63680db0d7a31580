"""Input pipeline (random 1-s windows of 10-s recordings, eval clips) and DIR loading."""

import os
import re

import _corpus
import _fs
import numpy as np
import pytest
import tensorflow as tf

from asc_core import vocab
from asc_core.errors import UserError
from keras_asc.data import pipeline
from keras_asc.data.dirs import load_dirs
from keras_asc.evaluation.dir_plots import load_dir_records

SR = vocab.SAMPLE_RATE
SECONDS = 3
NUM = 10


@pytest.fixture(scope="module")
def ramp_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ramp"))
    labels = _corpus.write_ramp_set(path, num_recordings=NUM, seconds=SECONDS)
    return path, labels


def offsets_of(waveforms):
    """Start sample of each ramp window (exact: samples are j * 2**-19)."""
    return np.round(waveforms[:, 0] / _corpus.RAMP_STEP).astype(np.int64)


def collect(dataset):
    waves, scenes, devices = [], [], []
    for w, labels in dataset.as_numpy_iterator():
        waves.append(w)
        scenes.append(labels["scene"])
        devices.append(labels["device"])
    return np.concatenate(waves), np.concatenate(scenes), np.concatenate(devices)


def test_train_windows_lie_inside_the_recording_with_correct_labels(ramp_dir):
    path, labels = ramp_dir
    data = pipeline.make_datasets(path, batch_size=5, windows_per_recording=3, seed=4)
    assert (data.num_train_examples, data.num_eval_examples) == (NUM, NUM * SECONDS)
    assert data.steps_per_epoch == NUM * 3 // 5
    waves, scenes, devices = collect(data.train_epoch(0))
    assert waves.shape == (NUM * 3, SR) and waves.dtype == np.float32
    assert scenes.dtype == np.int32 and devices.dtype == np.int32
    offsets = offsets_of(waves)
    assert offsets.min() >= 0 and offsets.max() <= SECONDS * SR - SR
    # Each window is a contiguous slice: sample j is offset + j.
    expected = (offsets[:, None] + np.arange(SR)[None, :]) * _corpus.RAMP_STEP
    np.testing.assert_array_equal(waves, expected.astype(np.float32))
    # Every recording gives exactly 3 windows, with its own scene and device.
    assert sorted(scenes.tolist()) == sorted(list(range(NUM)) * 3)
    for scene, device in zip(scenes, devices):
        assert labels[scene] == (scene, device)
    assert len(set(offsets.tolist())) > NUM  # windows slide, not aligned to clip starts


def test_epochs_are_reproducible_and_differ(ramp_dir):
    path, _ = ramp_dir
    data = pipeline.make_datasets(path, batch_size=5, seed=1)
    first = collect(data.train_epoch(0))
    again = collect(data.train_epoch(0))
    second = collect(data.train_epoch(1))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], second[0])
    # The multi-epoch stream (what fit() sees, e.g. after a resume at epoch 1) is the
    # concatenation of the per-epoch datasets.
    stream = collect(data.train_epochs(1, 3).map(lambda w, y: (w, y)))
    expected = [np.concatenate(p) for p in zip(second, collect(data.train_epoch(2)))]
    for a, b in zip(stream, expected):
        np.testing.assert_array_equal(a, b)
    other_seed = pipeline.make_datasets(path, batch_size=5, seed=2)
    assert not np.array_equal(first[0], collect(other_seed.train_epoch(0))[0])


def test_roll_shifts_each_window_circularly(ramp_dir):
    path, _ = ramp_dir
    data = pipeline.make_datasets(path, batch_size=10, roll_samples=1000, seed=0)
    waves, _, _ = collect(data.train_epoch(0))
    shifts = []
    for w in waves:
        steps = np.round(np.diff(w.astype(np.float64)) / _corpus.RAMP_STEP).astype(np.int64)
        jumps = np.flatnonzero(steps != 1)
        assert len(jumps) <= 1  # one wrap-around point at most
        shifts.append(0 if len(jumps) == 0 else jumps[0] + 1)
    shifts = np.array(shifts)
    # A roll by s > 0 puts the wrap after sample s; by s < 0 after SR + s.
    signed = np.where(shifts > SR // 2, shifts - SR, shifts)
    assert np.all(np.abs(signed) <= 1000) and np.any(signed != 0)


def test_scene_only_targets(ramp_dir):
    path, labels = ramp_dir
    data = pipeline.make_datasets(path, batch_size=4, targets="scene", seed=0)
    waveform, scene = next(iter(data.train_epoch(0)))
    assert waveform.shape == (4, SR) and scene.shape == (4,) and scene.dtype == tf.int32
    # Validation always carries both labels (per-device metrics).
    _, eval_labels = next(iter(data.eval))
    assert set(eval_labels) == {"scene", "device"}


def test_eval_reads_every_clip_once_in_file_order(ramp_dir):
    path, labels = ramp_dir
    data = pipeline.make_datasets(path, batch_size=4, eval_batch_size=7, seed=0)
    waves, scenes, devices = collect(data.eval)
    assert waves.shape == (NUM * SECONDS, SR)
    index = offsets_of(waves) // SR
    pairs = sorted(zip(scenes.tolist(), index.tolist()))
    assert pairs == [(r, k) for r in range(NUM) for k in range(SECONDS)]
    for scene, device in zip(scenes, devices):
        assert labels[scene] == (scene, device)
    again = collect(data.eval)
    np.testing.assert_array_equal(again[1], scenes)
    assert [b[0].shape[0] for b in data.eval] == [7, 7, 7, 7, 2]  # last batch kept


def test_one_second_view_takes_whole_clips(ramp_dir, tmp_path):
    path, _ = ramp_dir
    for name in os.listdir(path):  # the clips double as a "train-1s" view
        os.symlink(os.path.join(path, name), tmp_path / name)
        if name.startswith("evaluate-1s"):
            os.symlink(os.path.join(path, name), tmp_path / name.replace("evaluate", "train"))
    data = pipeline.make_datasets(str(tmp_path), batch_size=6, train_view="1s", seed=0)
    assert data.num_train_examples == NUM * SECONDS
    waves, _, _ = collect(data.train_epoch(0))
    assert sorted((offsets_of(waves) % SR).tolist()) == [0] * (NUM * SECONDS)


def test_device_balanced_sampling(tmp_path):
    devices = ["a"] * 7 + ["b", "c", "s1"]
    _corpus.write_ramp_set(str(tmp_path), num_recordings=10, seconds=1, devices=devices)
    data = pipeline.make_datasets(str(tmp_path), batch_size=8, device_balanced=True, seed=0)
    assert data.steps_per_epoch == 1  # one pass worth of windows, resampled
    batches = data.train_epoch(0, steps_per_epoch=50)
    _, _, got = collect(batches)
    assert got.shape == (400,)
    counts = np.bincount(got, minlength=len(vocab.DEVICES))
    shares = counts[[0, 1, 2, 3]] / 400
    assert counts[4:].sum() == 0
    # Uniform over the 4 devices present (7/10 of the recordings are device a).
    np.testing.assert_allclose(shares, 0.25, atol=0.07)


def test_random_window_eager_and_in_dataset_map():
    audio = tf.range(100, dtype=tf.float32)
    seeds = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64)
    eager = np.stack([pipeline.random_window(audio, 30, s).numpy() for s in seeds])
    mapped = np.stack(
        list(
            tf.data.Dataset.from_tensor_slices(seeds)
            .map(lambda s: pipeline.random_window(audio, 30, s))
            .as_numpy_iterator()
        )
    )
    np.testing.assert_array_equal(eager, mapped)
    for window in eager:
        assert window[0] <= 70 and np.array_equal(window, window[0] + np.arange(30))
    # Shorter than the window: zero padding at the end.
    short = pipeline.random_window(tf.ones([10]), 16, seeds[0]).numpy()
    np.testing.assert_array_equal(short, [1.0] * 10 + [0.0] * 6)


def test_block_shuffle_permutes_within_blocks():
    dataset = tf.data.Dataset.range(25)
    out = list(pipeline.block_shuffle(dataset, 10, tf.constant(3, tf.int64)).as_numpy_iterator())
    assert sorted(out[:10]) == list(range(10)) and sorted(out[20:]) == list(range(20, 25))
    assert out != list(range(25))
    again = list(pipeline.block_shuffle(dataset, 10, tf.constant(3, tf.int64)).as_numpy_iterator())
    assert out == again


def test_missing_and_empty_data_are_user_errors(tmp_path, ramp_dir):
    with pytest.raises(UserError) as info:
        pipeline.make_datasets(str(tmp_path / "nope"))
    assert str(info.value) == (
        f"data.path {tmp_path / 'nope'}: TFRecord folder not found; expected the output folder "
        "of `python -m tfrecords_builder tau22`"
    )
    path, _ = ramp_dir
    with pytest.raises(UserError) as info:
        pipeline.make_datasets(path, train_split="test")
    assert str(info.value) == (
        f"data.path {path}: no TFRecord shards for split 'test' view '10s' (expected "
        "test-10s.tfrecord-*); present: evaluate-1s, train-10s"
    )
    empty = tmp_path / "empty"
    _corpus.write_shards(str(empty), "train-10s", [], num_shards=1)
    _corpus.write_shards(str(empty), "evaluate-1s", [], num_shards=1)
    with pytest.raises(UserError, match="split 'train' view '10s' is empty"):
        pipeline.make_datasets(str(empty))
    with pytest.raises(UserError) as info:
        pipeline.make_datasets(path, batch_size=11)
    assert str(info.value) == (
        f"data.batch_size 11: larger than the 10 training windows of {path} split 'train'; "
        "expected at most that many"
    )


# === DIR sets ===


def test_load_dirs_pads_and_labels(tmp_path):
    vintage = tmp_path / "micirp"
    multi = tmp_path / "multi"
    _corpus.write_dir_set(str(vintage), num_irs=3, length=40, set_name="micirp",
                          microphones=[""] * 3)  # fmt: skip
    records = _corpus.write_dir_set(str(multi), num_irs=4, length=64)
    bank = load_dirs([str(vintage), str(multi)])
    assert len(bank) == 7 and bank.irs.shape == (7, 64) and bank.irs.dtype == np.float32
    np.testing.assert_array_equal(bank.lengths, [40, 32, 24, 64, 56, 48, 64])
    np.testing.assert_array_equal(bank.ir_ids, np.arange(7))
    # MicIRP stored without microphone names: one per file, its stem (as the micirp builder
    # names them now); multi: mic0 has IRs 0-1, mic1 has IRs 2-3.
    assert bank.microphones == ["micirp/0", "micirp/1", "micirp/2",
                                "multi/mic0", "multi/mic1"]  # fmt: skip
    # The figure reader names them by the same rule.
    _, plotted, _ = load_dir_records([str(vintage), str(multi)])
    assert [f"{r['set']}/{r['microphone']}" for r in plotted] == [
        bank.microphones[i] for i in bank.microphone_ids
    ]
    np.testing.assert_array_equal(bank.microphone_ids, [0, 1, 2, 3, 3, 4, 4])
    assert bank.sets == ["micirp"] * 3 + ["multi"] * 4
    assert np.all(bank.irs[2, 24:] == 0) and bank.irs[2, 0] == 1.0
    parsed = tf.train.Example.FromString(records[1]).features.feature["ir"].float_list.value
    np.testing.assert_array_equal(bank.irs[4, :56], np.array(parsed, np.float32))
    assert load_dirs(str(multi), max_ir_samples=20).irs.shape == (4, 20)


DIR_SHARD = "dirs.tfrecord-00000-of-00001"


def _overwrite(path, at, data):
    with open(path, "r+b") as f:
        f.seek(at)
        data = data(f.read(1)) if callable(data) else data
        f.seek(at)
        f.write(data)


def _cut_last_dir_record(folder):
    """info.json records the 4 IRs the builder wrote; the shard then loses its last record."""
    (folder / "info.json").write_text('{"builder": "multi-dirs", "num_examples": 4}')
    path, offset, last = folder / DIR_SHARD, 0, 0
    while offset < os.path.getsize(path):
        last = offset
        with open(path, "rb") as f:
            f.seek(offset)
            offset += 16 + int.from_bytes(f.read(8), "little")
    _fs.truncate(path, last)


# Damaged DIR shards met when training starts: one UserError naming the shard (or the folder
# and both counts), from the same checks as the audio shards (shards.shard_problem).
REBUILD = (
    r"; expected a complete TFRecord shard; rebuild the folder with python -m "
    r"tfrecords_builder"
)
DIR_DAMAGE = {
    "truncated shard": (
        lambda d: _fs.truncate(d / DIR_SHARD, os.path.getsize(d / DIR_SHARD) - 10),
        r"{shard}: truncated: the record at byte \d+ ends at byte \d+, the file has \d+ bytes"
        + REBUILD,
    ),
    "shard cut inside a record header": (
        lambda d: _fs.truncate(d / DIR_SHARD, 6),
        r"{shard}: truncated: the file ends inside the record header at byte 0" + REBUILD,
    ),
    "overwritten record header": (
        lambda d: _overwrite(d / DIR_SHARD, 0, b"\xff" * 8),
        r"{shard}: corrupted record header at byte 0" + REBUILD,
    ),
    "bit-flipped IR": (
        lambda d: _overwrite(d / DIR_SHARD, 12 + 100, lambda b: bytes([b[0] ^ 0x10])),
        r"{shard}: corrupted record at byte 0 \(data checksum mismatch\)" + REBUILD,
    ),
    "shard cut at a record boundary": (
        _cut_last_dir_record,
        r"{folder}: the dirs\.tfrecord-\* shards hold 3 records but info\.json records 4; a "
        r"shard is truncated or replaced; rebuild the folder with python -m tfrecords_builder",
    ),
}


@pytest.mark.parametrize("case", sorted(DIR_DAMAGE))
def test_damaged_dir_shard_one_clear_error(case, tmp_path):
    folder = tmp_path / "dirs"
    _corpus.write_dir_set(str(folder), num_irs=4, length=64)
    assert len(load_dirs(str(folder))) == 4
    damage, message = DIR_DAMAGE[case]
    damage(folder)
    expected = message.format(
        shard=re.escape(str(folder / DIR_SHARD)), folder=re.escape(str(folder))
    )
    with pytest.raises(UserError) as info:
        load_dirs(str(folder))
    assert re.fullmatch(f"dirs\\.sets: {expected}", str(info.value)), str(info.value)


def test_load_dirs_errors(tmp_path):
    other_rate = tmp_path / "r16k"
    _corpus.write_dir_set(str(other_rate), num_irs=2, sample_rate=16000)
    with pytest.raises(UserError) as info:
        load_dirs(str(other_rate))
    assert str(info.value).startswith(
        f"dirs.sets: {other_rate}: IR 'mic0/0.wav' is stored at 16000 Hz; expected 32000 Hz"
    )
    empty = tmp_path / "empty"
    _corpus.write_shards(str(empty), "dirs", [], num_shards=1)
    with pytest.raises(UserError) as info:
        load_dirs(str(empty))
    assert str(info.value) == f"dirs.sets: {empty}: no impulse responses found"
    with pytest.raises(UserError, match="DIR folder not found"):
        load_dirs(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "noshards")
    with pytest.raises(UserError, match="no dirs.tfrecord-\\* shards"):
        load_dirs(str(tmp_path / "noshards"))

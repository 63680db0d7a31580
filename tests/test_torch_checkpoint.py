"""The torch-free `.pt` reader: parity with torch.load, refusal of code, bad files.

The refusal and bad-file cases write their checkpoints with `pickle` and `zipfile` only, so
they run without torch; the parity tests use torch as the oracle.
"""

import collections
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from asc_core.errors import UserError
from keras_asc.models.torch_checkpoint import load_torch_checkpoint
from keras_asc.models.torch_checkpoint import read_torch_state_dict

LEGACY_HEADER = (
    pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    + pickle.dumps(1001, protocol=2)
    + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
)


def _zip_checkpoint(path, pickle_bytes, records=None):
    """A zip laid out as torch.save's: `archive/data.pkl` plus `archive/<name>` records."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for name, data in (records or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


# === Parity with torch.load(weights_only=True) ===


def _state_dict(torch):
    """Every layout a state dict can hold: views, offsets, strides, dtypes, nesting, shared."""
    torch.manual_seed(0)
    base = torch.randn(6, 8)
    return collections.OrderedDict(
        dense=torch.randn(3, 4),
        transposed=base.t(),  # non-contiguous, shares `base`'s storage with the next two
        strided=base[1:5, ::3],  # offset 8, stride (8, 3)
        row=base[2],  # offset 16
        expanded=torch.randn(3, 1).expand(3, 4),  # stride 0
        half=torch.randn(5, 2).half(),
        bfloat16=torch.randn(4, 3).bfloat16(),
        double=torch.randn(2, 2, dtype=torch.float64),
        int64=torch.arange(-5, 5),
        int8=torch.arange(-3, 3, dtype=torch.int8),
        uint8=torch.arange(7, dtype=torch.uint8),
        boolean=torch.tensor([True, False, True]),
        complex64=torch.randn(3, dtype=torch.complex64),
        scalar=torch.tensor(3.5),
        empty=torch.zeros(0, 3),
        parameter=torch.nn.Parameter(torch.randn(2, 2)),
        nested={"list": [torch.ones(2), (1, "a", 2.5)], "set": {1, 2}, "bytes": b"\x00\xff"},
    )


def _assert_same(got, expected, torch, where="checkpoint"):
    if torch.is_tensor(expected):
        reference = expected.detach()
        if reference.dtype == torch.bfloat16:  # documented: widened to float32
            reference = reference.float()
        reference = reference.numpy()
        assert isinstance(got, np.ndarray), where
        assert got.dtype == reference.dtype and got.shape == reference.shape, where
        assert got.flags.c_contiguous and got.flags.writeable, where
        np.testing.assert_array_equal(got, reference, err_msg=where)
    elif isinstance(expected, dict):
        assert type(got) is type(expected) and list(got) == list(expected), where
        for key in expected:
            _assert_same(got[key], expected[key], torch, f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert type(got) is type(expected) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_same(a, b, torch, f"{where}[{i}]")
    else:
        assert got == expected, where


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_every_array_equals_torch_load(zipped, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "state.pt"
    torch.save(_state_dict(torch), path, _use_new_zipfile_serialization=zipped)
    expected = torch.load(path, weights_only=True)
    got = load_torch_checkpoint(path)
    _assert_same(got, expected, torch)
    assert got["bfloat16"].dtype == np.float32 and got["half"].dtype == np.float16


def test_uint16_tensor_of_an_untyped_storage(tmp_path):
    # Dtypes newer than the legacy storage classes are pickled by `_rebuild_tensor_v3`.
    torch = pytest.importorskip("torch")
    path = tmp_path / "u16.pt"
    torch.save({"u16": torch.arange(300).to(torch.uint16)[::2]}, path)
    _assert_same(load_torch_checkpoint(path), torch.load(path, weights_only=True), torch)


def test_big_endian_storages(tmp_path):
    torch = pytest.importorskip("torch")
    path, swapped = tmp_path / "little.pt", tmp_path / "big.pt"
    value = torch.randn(3, 5)
    torch.save({"w": value[:, 1:]}, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(swapped, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            dst.writestr(info, data)
    got = load_torch_checkpoint(swapped)["w"]
    assert got.dtype == np.dtype("float32") and got.dtype.isnative
    np.testing.assert_array_equal(got, value[:, 1:].numpy())


def test_read_torch_state_dict_unwraps_and_widens_floats(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "train.pt"
    state = {"w": torch.randn(2, 3).half(), "b": torch.randn(3).bfloat16(), "n": torch.arange(3)}
    torch.save({"model": state, "epoch": 4}, path)
    arrays = read_torch_state_dict(path)
    assert {k: v.dtype for k, v in arrays.items()} == {
        "w": np.float32,
        "b": np.float32,
        "n": np.int64,
    }
    np.testing.assert_array_equal(arrays["w"], state["w"].float().numpy())


# === Code in the pickle: refused before it runs ===


class _Payload:
    """Unpickles as `function(*args)`: what an attacker's checkpoint would run."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _zip_payload(path, payload):
    return _zip_checkpoint(path, pickle.dumps({"cls_token": payload}, protocol=2))


def _legacy_payload(path, payload):
    path.write_bytes(LEGACY_HEADER + pickle.dumps({"w": payload}, protocol=2))
    return path


REFUSED = {
    # case: (write the checkpoint, payload(marker), global named in the message)
    "io.open in a zip": (_zip_payload, lambda m: _Payload(open, str(m), "w"), "io.open"),
    "os.system in a zip": (
        _zip_payload,
        lambda m: _Payload(os.system, f"touch {m}"),
        f"{os.system.__module__}.system",
    ),
    "builtins.eval in a zip": (
        _zip_payload,
        lambda m: _Payload(eval, f"open({str(m)!r}, 'w')"),
        "builtins.eval",
    ),
    "builtins.exec in a legacy file": (
        _legacy_payload,
        lambda m: _Payload(exec, f"open({str(m)!r}, 'w')"),
        "builtins.exec",
    ),
    "a class of the training code": (
        _zip_payload,
        lambda m: _Payload(collections.Counter, "abc"),
        "collections.Counter",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_code_is_refused_unexecuted_naming_the_global(case, tmp_path):
    write, payload, name = REFUSED[case]
    marker = tmp_path / "pwned.txt"
    path = write(tmp_path / "evil.pt", payload(marker))
    with pytest.raises(UserError) as err:
        read_torch_state_dict(path)
    assert str(err.value) == (
        f"checkpoint {path}: refused, it is not a plain tensor state dict: its pickle needs the "
        f"global {name}, which was neither imported nor called (only tensors, parameters and "
        "plain containers are read)"
    )
    assert "weights_only" not in str(err.value)
    assert not marker.exists()  # the payload did not run
    assert sorted(os.listdir(tmp_path)) == ["evil.pt"]


def test_payload_after_real_tensors_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "mixed.pt"
    state = {"cls_token": torch.zeros(1, 1, 4), "z": _Payload(os.system, f"touch {marker}")}
    torch.save(state, path)
    with pytest.raises(UserError, match=r"mixed\.pt: refused, .* the global (posix|nt)\.system"):
        load_torch_checkpoint(path)
    assert not marker.exists()


# === Files that are not (whole) checkpoints ===


class _Global:
    """The storage type `module.name` of a hand-written tensor pickle."""

    def __init__(self, module, name):
        self.module, self.name = module, name


def _float_storage(key="0", numel=6, name="FloatStorage"):
    return ("storage", _Global("torch", name), key, "cpu", numel)


def _tensor_pickle(pid, offset, size, stride):
    """Hand-written protocol-2 pickle of `{"w": _rebuild_tensor_v2(storage, ...)}`."""
    module, name = pid[1].module, pid[1].name
    out = io.BytesIO()
    out.write(b"\x80\x02}q\x00X\x01\x00\x00\x00w")  # PROTO 2, EMPTY_DICT, "w"
    out.write(b"ctorch._utils\n_rebuild_tensor_v2\n")
    out.write(b"(")  # MARK of the argument tuple
    # persistent id tuple: ("storage", <global>, key, location, numel)
    out.write(b"(X\x07\x00\x00\x00storage" + f"c{module}\n{name}\n".encode())
    for text in pid[2:4]:
        out.write(b"X" + len(text).to_bytes(4, "little") + text.encode())
    out.write(b"J" + pid[4].to_bytes(4, "little", signed=True) + b"tQ")  # TUPLE, BINPERSID
    out.write(b"J" + offset.to_bytes(4, "little", signed=True))
    for shape in (size, stride):
        out.write(b"(" + b"".join(b"J" + n.to_bytes(4, "little", signed=True) for n in shape))
        out.write(b"t")
    out.write(b"\x89")  # requires_grad False
    out.write(b"ccollections\nOrderedDict\n)R")  # backward hooks: OrderedDict()
    out.write(b"tRs.")  # TUPLE, REDUCE, SETITEM, STOP
    return out.getvalue()


def _write(path, data):
    path.write_bytes(data)
    return path


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/readme.txt", "hello")
    return path


def _tar(path):
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("storages")
        archive.addfile(info, io.BytesIO(b""))
    return path


BAD_FILES = {
    "missing": (lambda p: p, r"missing\.pt: no such file"),
    "text": (
        lambda p: _write(p, b"not a checkpoint"),
        r"text\.pt: cannot be read as a PyTorch checkpoint \(neither a zip archive nor a legacy "
        r"torch\.save stream\); expected a state dict saved with torch\.save$",
    ),
    "zip without data.pkl": (
        _plain_zip,
        r"a zip archive without exactly one <name>/data\.pkl \(found 0\)",
    ),
    "torchscript archive": (
        lambda p: _zip_checkpoint(p, pickle.dumps({}, protocol=2), {"code/__torch__.py": "x"}),
        r"a TorchScript archive \(torch\.jit\.save\); expected a state dict",
    ),
    "truncated storage": (
        lambda p: _zip_checkpoint(
            p,
            _tensor_pickle(_float_storage(), 0, (2, 3), (3, 1)),
            {"data/0": np.zeros(5, "<f4").tobytes()},
        ),
        r"storage archive/data/0 holds 20 bytes; expected 24 \(6 elements of 4 bytes\)",
    ),
    "storage missing": (
        lambda p: _zip_checkpoint(p, _tensor_pickle(_float_storage("7"), 0, (6,), (1,))),
        r"storage archive/data/7 is missing",
    ),
    "view past its storage": (
        lambda p: _zip_checkpoint(
            p,
            _tensor_pickle(_float_storage(), 2, (2, 3), (3, 1)),
            {"data/0": np.zeros(6, "<f4").tobytes()},
        ),
        r"storage 0 holds 6 elements; a tensor of size \(2, 3\), stride \(3, 1\) at offset 2 "
        r"needs 8 \(a truncated or corrupted checkpoint\)",
    ),
    "unsupported storage type": (
        lambda p: _zip_checkpoint(
            p, _tensor_pickle(_float_storage(name="QInt8Storage"), 0, (6,), (1,))
        ),
        r"refused, .* the global torch\.QInt8Storage",
    ),
    "truncated pickle": (
        lambda p: _zip_checkpoint(p, pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-5]),
        r"cannot be read as a PyTorch checkpoint \(.*\); expected a state dict",
    ),
    "pre-0.4 tar": (_tar, r"a tar archive of PyTorch < 0\.4; load and re-save it"),
    "a list, not a state dict": (
        lambda p: _zip_checkpoint(p, pickle.dumps([1, 2], protocol=2)),
        r"expected a state dict \(a mapping of parameter names to tensors\), found list",
    ),
    "a number in the state dict": (
        lambda p: _zip_checkpoint(p, pickle.dumps({"epoch": 3}, protocol=2)),
        r"entry 'epoch' is a int; expected a state dict of tensors",
    ),
    "truncated legacy storage": (
        lambda p: _write(
            p,
            LEGACY_HEADER
            + _tensor_pickle(_float_storage(), 0, (6,), (1,))
            + pickle.dumps(["0"], protocol=2)
            + (6).to_bytes(8, "little")
            + bytes(10),
        ),
        r"storage 0 holds 2 of 6 elements \(a truncated or corrupted checkpoint\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_one_clear_error(case, tmp_path):
    write, message = BAD_FILES[case]
    name = case.split()[0].replace(",", "") + ".pt"
    path = write(tmp_path / name)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserError, match=message) as err:
        read_torch_state_dict(path)
    assert str(err.value).startswith(f"checkpoint {path}: ")
    assert "Traceback" not in str(err.value) and "weights_only" not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written beside it


def test_hand_written_tensor_pickle_reads_like_torch(tmp_path):
    """The bad-file cases' hand-written pickle is a faithful tensor (so they test the checks)."""
    data = np.arange(6, dtype="<f4")
    path = _zip_checkpoint(
        tmp_path / "ok.pt",
        _tensor_pickle(_float_storage(), 1, (2, 2), (1, 3)),
        {"data/0": data.tobytes()},
    )
    np.testing.assert_array_equal(read_torch_state_dict(path)["w"], [[1, 4], [2, 5]])
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(torch.load(path, weights_only=True)["w"], [[1, 4], [2, 5]])

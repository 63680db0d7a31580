"""Reads PyTorch `.pt` checkpoints into NumPy arrays without torch, refusing anything else.

Formats (what `torch.save` writes):

- zip (PyTorch >= 1.6, every official PaSST release): `<prefix>/data.pkl` is a pickle in which
  each tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and
  each storage a persistent id `("storage", torch.<Type>Storage, key, location, numel)` whose
  bytes are the archive member `<prefix>/data/<key>`; `<prefix>/byteorder` says how they are
  stored (absent in old files: little-endian, as every machine that wrote them).
- legacy (`_use_new_zipfile_serialization=False`): the pickles of a magic number, a protocol
  version and system info, then the object pickle, then the list of storage keys, then each
  storage as an int64 element count and its bytes (always little-endian).
  Pre-0.4 tar files and TorchScript archives are refused with a clear error.

Safety: the pickles are read by `_RestrictedUnpickler`, whose `find_class` returns this
module's own stand-ins for the tensor-rebuild globals (`torch._utils._rebuild_tensor_v2/v3`,
`_rebuild_parameter[_with_state]`), the storage types and dtypes, `collections.OrderedDict`
and the plain containers pickle needs (`set`, `frozenset`, `bytearray`, `complex`, `bytes`
through `_codecs.encode`); any other global (`os.system`, `builtins.eval`, a class of the
training code, ...) is a `UserError` naming it, raised before it is imported or called.
Nothing of torch is ever imported.

Dtypes: every array keeps its stored dtype in native byte order, except bfloat16 (NumPy has
none), which is widened to float32 exactly (bfloat16 is the top half of a float32).
"""

import _compat_pickle
import collections
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np

from asc_core.errors import UserError

# NumPy dtypes (little-endian) of the legacy storage classes; "bfloat16" is widened later.
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexDoubleStorage": "<c16",
    "ComplexFloatStorage": "<c8",
    "UntypedStorage": "u1",
}
# `torch.<name>` dtypes of `_rebuild_tensor_v3` (tensors over an untyped storage).
_TORCH_DTYPES = {
    "float64": "<f8",
    "float32": "<f4",
    "float16": "<f2",
    "bfloat16": "bfloat16",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
    "complex128": "<c16",
    "complex64": "<c8",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list (raised from `find_class`, before any import)."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


class _StorageType:
    """Stand-in for `torch.<Type>Storage` / a `torch.<dtype>`: only its NumPy dtype."""

    __slots__ = ("dtype", "name")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype


class _Storage:
    """One storage: its elements as a flat little-endian (or big-endian) NumPy array."""

    __slots__ = ("array", "dtype", "key")

    def __init__(self, key, dtype, array):
        self.key = key
        self.dtype = dtype
        self.array = array


def _bytes_from_encode(text, encoding="latin1"):
    # Protocol-2 pickles spell `bytes` as `_codecs.encode(str, "latin1")`; no other codec.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds tensors as NumPy arrays and refuses every other global.

    Args:
        file: binary file positioned at the pickle.
        path: the checkpoint, for messages.
        storage_bytes: `(key, dtype, numel) -> flat NumPy array` or None (the first pass over a
            legacy file, which only records the storages: tensors are then None).
        byteorder: `"little"` or `"big"`, how the storages' bytes are laid out.
    """

    def __init__(self, file, path, storage_bytes=None, byteorder="little"):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._storage_bytes = storage_bytes
        self._byteorder = byteorder
        self.storages = {}  # key -> (dtype, numel), in order of first use

    def find_class(self, module, name):
        # Protocol-2 pickles use Python 2 names (`__builtin__.set`); map them as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        qualified = f"{module}.{name}"
        allowed = {
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self._rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": _rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
            "collections.OrderedDict": collections.OrderedDict,
            "torch.Size": tuple,
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            "builtins.bytearray": bytearray,
            "builtins.complex": complex,
            "_codecs.encode": _bytes_from_encode,
        }
        if qualified in allowed:
            return allowed[qualified]
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(name, _TORCH_DTYPES[name])
        raise _Refused(qualified)

    def persistent_load(self, pid):
        # zip: ("storage", type, key, location, numel); legacy: the same plus view metadata.
        storage_id = isinstance(pid, tuple) and len(pid) in (5, 6)
        if not (storage_id and pid[0] in ("storage", b"storage")):
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise pickle.UnpicklingError(
                f"persistent id {kind!r} is not a tensor storage (a pickled nn.Module or "
                "another object needs its code)"
            )
        storage_type, key, _, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType) or storage_type.name not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"storage {key!r} has no storage type")
        if not isinstance(key, str) or isinstance(numel, bool) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage id {pid[:5]!r}")
        if numel < 0:
            raise pickle.UnpicklingError(f"storage {key!r} has {numel} elements")
        dtype = storage_type.dtype
        known = self.storages.setdefault(key, (dtype, numel))
        if known != (dtype, numel):
            raise pickle.UnpicklingError(f"storage {key!r} is used as {known} and {(dtype, numel)}")
        array = None
        if self._storage_bytes is not None:
            array = self._storage_bytes(key, dtype, numel)
        if view is not None and array is not None:  # legacy views: (key, offset, size)
            _, offset, size = view
            itemsize = _itemsize(dtype)
            array = array[offset * itemsize : (offset + size) * itemsize]
        return _Storage(key, dtype, array)

    def _element_dtype(self, dtype):
        if dtype == "bfloat16":
            dtype = "<u2"
        return np.dtype(dtype).newbyteorder("<" if self._byteorder == "little" else ">")

    def _strided(self, storage, dtype, offset, size, stride):
        """The tensor `size`/`stride` at element `offset` of `storage` (a copy, native order)."""
        if storage.array is None:  # first pass over a legacy file
            return None
        if not (_int_tuple(size) and _int_tuple(stride) and len(size) == len(stride)):
            raise pickle.UnpicklingError(f"tensor of size {size!r} and stride {stride!r}")
        if not isinstance(offset, int) or offset < 0 or min(stride, default=0) < 0:
            raise pickle.UnpicklingError(f"tensor at offset {offset!r}, stride {stride!r}")
        element = self._element_dtype(dtype)
        flat = storage.array.view(element) if storage.array.dtype != element else storage.array
        if 0 in size:
            out = np.empty(size, element)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= flat.size:
                raise UserError(
                    f"checkpoint {self._path}: storage {storage.key} holds {flat.size} "
                    f"elements; a tensor of size {tuple(size)}, stride {tuple(stride)} at "
                    f"offset {offset} needs {last + 1} (a truncated or corrupted checkpoint)"
                )
            out = np.lib.stride_tricks.as_strided(
                flat[offset:],
                shape=size,
                strides=[s * element.itemsize for s in stride],
                writeable=False,
            )
        if dtype == "bfloat16":
            return (out.astype("<u4", order="C") << 16).view("<f4").astype(np.float32)
        return np.array(out, dtype=element.newbyteorder("="), order="C")

    def _rebuild_tensor_v2(
        self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
    ):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("_rebuild_tensor_v2 of something that is not a storage")
        array = self._strided(storage, storage.dtype, storage_offset, size, stride)
        return _apply_metadata(array, metadata)

    def _rebuild_tensor_v3(
        self,
        storage,
        storage_offset,
        size,
        stride,
        requires_grad,
        backward_hooks,
        dtype,
        metadata=None,
    ):
        if not isinstance(storage, _Storage) or storage.dtype != "u1":
            raise pickle.UnpicklingError("_rebuild_tensor_v3 of something that is not a storage")
        if not isinstance(dtype, _StorageType) or dtype.name not in _TORCH_DTYPES:
            name = dtype.name if isinstance(dtype, _StorageType) else repr(dtype)
            raise pickle.UnpicklingError(f"tensor of unsupported dtype torch.{name}")
        element = self._element_dtype(dtype.dtype)
        if storage.array is not None and storage.array.size % element.itemsize:
            raise pickle.UnpicklingError(
                f"storage {storage.key}: {storage.array.size} bytes are no whole number of "
                f"{dtype.name}"
            )
        array = self._strided(storage, dtype.dtype, storage_offset, size, stride)
        return _apply_metadata(array, metadata)


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _int_tuple(value):
    return isinstance(value, tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    )


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    # An nn.Parameter is its data; requires_grad, hooks and attributes do not matter here.
    if data is not None and not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError("_rebuild_parameter of something that is not a tensor")
    return data


def _apply_metadata(array, metadata):
    """Applies the lazy `conj`/`neg` bits torch stores beside a tensor's raw data."""
    unknown = set(metadata or {}) - {"conj", "neg"}
    if unknown:
        raise pickle.UnpicklingError(f"tensor metadata {sorted(unknown)} is not supported")
    if array is not None and (metadata or {}).get("conj"):
        array = np.conj(array)
    if array is not None and (metadata or {}).get("neg"):
        array = np.negative(array)
    return array


def _zip_load(path, archive):
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
        raise UserError(
            f"checkpoint {path}: a TorchScript archive (torch.jit.save); expected a state "
            "dict saved with torch.save"
        )
    if len(pickles) != 1:
        raise UserError(
            f"checkpoint {path}: a zip archive without exactly one <name>/data.pkl "
            f"(found {len(pickles)}); expected a file written by torch.save"
        )
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise UserError(
                f"checkpoint {path}: byteorder record {byteorder!r}; expected 'little' or 'big'"
            )
    cache = {}

    def storage_bytes(key, dtype, numel):
        if key not in cache:
            member = f"{prefix}data/{key}"
            itemsize = _itemsize(dtype)
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise UserError(f"checkpoint {path}: storage {member} is missing") from None
            if info.file_size < numel * itemsize:
                raise UserError(
                    f"checkpoint {path}: storage {member} holds {info.file_size} bytes; "
                    f"expected {numel * itemsize} ({numel} elements of {itemsize} bytes)"
                )
            data = archive.read(member)
            cache[key] = np.frombuffer(data, np.uint8, count=numel * itemsize)
        return cache[key]

    with archive.open(pickles[0]) as f:
        return _RestrictedUnpickler(f, path, storage_bytes, byteorder).load()


def _legacy_load(path, f):
    """A legacy (non-zip) `torch.save` stream: two passes over the object pickle (the first
    learns the storages, whose bytes follow the pickle; the second builds the arrays)."""
    header = [_RestrictedUnpickler(f, path).load() for _ in range(3)]
    if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"legacy header {header[:2]!r}")
    start = f.tell()
    first = _RestrictedUnpickler(f, path)
    first.load()
    keys = _RestrictedUnpickler(f, path).load()
    if not isinstance(keys, list) or set(keys) != set(first.storages):
        raise pickle.UnpicklingError("the storage key list does not match the pickle")
    arrays = {}
    for key in keys:
        dtype, numel = first.storages[key]
        itemsize = _itemsize(dtype)
        (count,) = struct.unpack("<q", f.read(8))
        data = f.read(count * itemsize)
        if count != numel or len(data) != numel * itemsize:
            raise UserError(
                f"checkpoint {path}: storage {key} holds {len(data) // itemsize} of {numel} "
                "elements (a truncated or corrupted checkpoint)"
            )
        arrays[key] = np.frombuffer(data, np.uint8)
    f.seek(start)
    return _RestrictedUnpickler(f, path, lambda key, dtype, numel: arrays[key]).load()


def load_torch_checkpoint(path):
    """The object `torch.save` wrote to `path`, with every tensor as a NumPy array.

    Containers come back as pickled (dict, `OrderedDict`, list, tuple, ...); tensors and
    parameters as arrays of their own shape and dtype (native byte order; bfloat16 as
    float32), each a contiguous copy.

    Raises:
        UserError: the file missing, not a `torch.save` file, truncated or corrupted, or a
            pickle that needs any other global than tensors and plain containers (refused,
            naming the global, before it is imported or called).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _zip_load(path, archive)
        with open(path, "rb") as f:
            if f.peek(2)[:2] == b"\x80\x02":  # a protocol-2 pickle: the legacy stream
                return _legacy_load(path, f)
        if tarfile.is_tarfile(path):
            raise UserError(
                f"checkpoint {path}: a tar archive of PyTorch < 0.4; load and re-save it with "
                "a recent torch (torch.save) first"
            )
        raise UserError(
            f"checkpoint {path}: cannot be read as a PyTorch checkpoint (neither a zip archive "
            "nor a legacy torch.save stream); expected a state dict saved with torch.save"
        )
    except _Refused as err:
        raise UserError(
            f"checkpoint {path}: refused, it is not a plain tensor state dict: its pickle needs "
            f"the global {err.name}, which was neither imported nor called (only tensors, "
            "parameters and plain containers are read)"
        ) from None
    except UserError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        struct.error,
        zipfile.BadZipFile,
        OSError,
        RecursionError,
    ) as err:
        reason = str(err) or type(err).__name__
        raise UserError(
            f"checkpoint {path}: cannot be read as a PyTorch checkpoint ({reason}); expected "
            "a state dict saved with torch.save"
        ) from None


def unwrap_state_dict(state_dict, source="checkpoint"):
    """The parameter mapping of `state_dict` (its `"model"` entry when it has one).

    Raises:
        UserError: naming `source`, when that is not a non-empty mapping.
    """
    if isinstance(state_dict, dict) and isinstance(state_dict.get("model"), dict):
        state_dict = state_dict["model"]
    if not isinstance(state_dict, dict) or not state_dict:
        raise UserError(
            f"{source}: expected a state dict (a mapping of parameter names to tensors), "
            f"found {type(state_dict).__name__}"
        )
    return state_dict


def read_torch_state_dict(path):
    """`{key: np.ndarray}` from the PyTorch checkpoint `path`, floating tensors as float32.

    A top-level `"model"` entry (training checkpoints) is unwrapped. Needs no torch.

    Raises:
        UserError: see `load_torch_checkpoint`; also content that is not a state dict of
            tensors.
    """
    content = unwrap_state_dict(load_torch_checkpoint(path), f"checkpoint {path}")
    arrays = {}
    for key, value in content.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise UserError(
                f"checkpoint {path}: entry {key!r} is a {type(value).__name__}; expected a "
                f"state dict of tensors"
            )
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32, copy=False)
        arrays[key] = value
    return arrays

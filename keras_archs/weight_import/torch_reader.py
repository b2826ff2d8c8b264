"""Read a PyTorch state dict (``torch.save(model.state_dict(), path)``) without torch.

A ``.pth`` file is a pickle, and unpickling can run arbitrary code. This reader
never does: its unpickler resolves only the handful of globals a state dict
needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
``_rebuild_parameter``, and the typed storage classes), each replaced by a
harmless stand-in that builds a NumPy array; any other global raises
:class:`UnsafeFileError`. Both of torch's on-disk formats are read: the zip
archive (``archive/data.pkl`` plus one raw file per storage, torch >= 1.6) and
the legacy stream (magic number, then pickles, then the raw storages), which is
how several of torchvision's older official files are stored.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeFileError(ValueError):
    """The pickle asks for something a plain state dict never contains."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _as_array(raw: bytes, dtype, count: int) -> np.ndarray:
    if dtype == "bfloat16":  # the upper half of a float32
        halves = np.frombuffer(raw, dtype="<u2", count=count)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(dtype).newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype, count=count).astype(dtype.newbyteorder("="))


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2: a strided view of a flat storage."""
    flat = storage
    if len(size) == 0:
        return np.array(flat[offset])
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


class _Placeholder:
    """A legacy-format storage whose bytes come after the pickle."""

    def __init__(self, key: str):
        self.key = key


class _Deferred:
    """A tensor of a legacy-format file, rebuilt once its storage is read."""

    def __init__(self, storage: _Placeholder, *args):
        self.storage = storage
        self.args = args


def _rebuild_tensor_or_defer(storage, *args):
    if isinstance(storage, _Placeholder):
        return _Deferred(storage, *args)
    return _rebuild_tensor(storage, *args)


def _rebuild_parameter(data, *_ignored):
    return data


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_or_defer,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeFileError(
            f"refusing to unpickle global {module}.{name}: a state dict (torch.save(model.state_dict()))"
            f" never needs it"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeFileError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeFileError(f"unexpected storage type {storage_type!r}")
        return self._load_storage(storage_type, str(key), int(numel))


def _read_zip(path: str) -> dict:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path!r} is a zip file but not a torch.save archive (no data.pkl).")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path!r} was saved big-endian; only little-endian files are supported.")
        cache: dict[str, np.ndarray] = {}

        def load_storage(storage_type, key, numel):
            if key not in cache:
                cache[key] = _as_array(archive.read(f"{root}data/{key}"), storage_type.dtype, numel)
            return cache[key]

        return _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(path: str) -> dict:
    with open(path, "rb") as f:
        header = _StateDictUnpickler(f, None)
        if header.load() != _LEGACY_MAGIC:
            raise ValueError(f"{path!r} is not a torch.save file (bad magic number).")
        header.load()  # protocol version
        header.load()  # sys_info
        pending: dict[str, tuple[_StorageType, int]] = {}
        storages: dict[str, np.ndarray] = {}

        def record(storage_type, key, numel):
            pending[key] = (storage_type, numel)
            # Filled in below, once the raw storages that follow the pickles are read.
            return _Placeholder(key)

        obj = _StateDictUnpickler(f, record).load()
        keys = pickle.Unpickler(f).load()  # a list of str: no globals involved
        for key in keys:
            storage_type, _ = pending[key]
            (count,) = struct.unpack("<q", f.read(8))
            itemsize = 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize
            storages[key] = _as_array(f.read(count * itemsize), storage_type.dtype, count)
    return _resolve_placeholders(obj, storages)


def _resolve_placeholders(obj, storages):
    # In the legacy format tensors are rebuilt before their data is read, so the
    # unpickler above produced (placeholder, offset, size, stride) records.
    if isinstance(obj, _Deferred):
        return _rebuild_tensor(storages[obj.storage.key], *obj.args)
    if isinstance(obj, dict):
        return obj.__class__((k, _resolve_placeholders(v, storages)) for k, v in obj.items())
    return obj


def is_torch_file(path: str) -> bool:
    """Whether ``path`` looks like a ``torch.save`` file (zip archive or legacy stream)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") for n in archive.namelist())
    with open(path, "rb") as f:
        head = f.read(16)
    # protocol-2 pickle of the legacy magic number: PROTO 2, LONG1 10 bytes
    return head[:4] == b"\x80\x02\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a torch state dict as float/int NumPy arrays, keyed by name.

    Checkpoints that wrap the state dict (``{"state_dict": ...}`` or
    ``{"model": ...}``) are unwrapped and a ``module.`` prefix (DataParallel) is
    dropped. Falls back to ``torch.load(weights_only=True)`` only if torch is
    already imported and this reader cannot parse the file.
    """
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except UnsafeFileError:
        raise
    except Exception as err:
        torch = sys.modules.get("torch")
        if torch is None:
            raise ValueError(f"could not read torch file {path!r}: {err}") from err
        obj = {
            k: v.numpy() if hasattr(v, "numpy") else v
            for k, v in torch.load(path, weights_only=True, map_location="cpu").items()
        }
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state dict.")
    tensors = {}
    for key, value in obj.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{path!r}: entry {key!r} is a {type(value).__name__}, not a tensor.")
        tensors[key.removeprefix("module.")] = value
    return tensors

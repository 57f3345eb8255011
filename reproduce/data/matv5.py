"""A small reader for MATLAB level-5 ``.mat`` files.

SVHN, Oxford Flowers-102 and the ILSVRC-2012 devkit ship ``.mat`` v5 files and
scipy is not a dependency. This reads numeric variables (compressed or not) and
can stream one big variable in chunks along its last dimension, so SVHN's 1.6 GB
``extra`` split never needs two full copies in memory. It also reads char arrays
(as ``str``), cell arrays (as a ``list`` in MATLAB's column-major order) and
struct arrays (as a ``list`` of ``dict``, same order): the ILSVRC devkit's
``meta.mat`` is a struct array of synsets. Format: MathWorks "MAT-File Format"
(level 5).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np

from ..errors import ReproduceError

_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MI_UTF8, _MI_UTF16 = 16, 17
_MX_CELL, _MX_STRUCT, _MX_CHAR = 1, 2, 4
# mxCLASS -> numpy dtype of the variable as MATLAB sees it.
_MX = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}

ChunkSink = Callable[[np.ndarray], None]
# Called with the variable's MATLAB dims before its data; returns the chunk sink.
SinkFactory = Callable[[tuple[int, ...]], ChunkSink]


class _Raw:
    """Reads exactly n bytes from a file, within a bounded window."""

    def __init__(self, f: BinaryIO, limit: int | None = None) -> None:
        self.f, self.left = f, limit

    def read(self, n: int) -> bytes:
        if self.left is not None:
            n = min(n, self.left)
        b = self.f.read(n)
        if self.left is not None:
            self.left -= len(b)
        return b


class _Inflate:
    """The decompressed bytes of one miCOMPRESSED element, read incrementally."""

    def __init__(self, raw: _Raw) -> None:
        self.raw, self.z, self.buf = raw, zlib.decompressobj(), bytearray()

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.raw.read(1 << 20)
            if not chunk:
                self.buf += self.z.flush()
                break
            self.buf += self.z.decompress(chunk)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _exact(src: _Raw | _Inflate, n: int, where: str) -> bytes:
    b = src.read(n)
    if len(b) != n:
        raise ReproduceError(f"{where}: truncated .mat file")
    return b


def _tag(src: _Raw | _Inflate, endian: str, where: str) -> tuple[int, int, bytes | None]:
    """(type, nbytes, small-element payload or None)."""
    b = _exact(src, 8, where)
    first, second = struct.unpack(endian + "II", b)
    if first >> 16:  # small data element: type and size packed in 4 bytes
        n = first >> 16
        return first & 0xFFFF, n, b[4 : 4 + n]
    return first, second, None


def _pad(n: int) -> int:
    return (8 - n % 8) % 8


def _element(src: _Raw | _Inflate, endian: str, where: str) -> tuple[int, bytes]:
    typ, n, small = _tag(src, endian, where)
    if small is not None:
        return typ, small
    data = _exact(src, n, where)
    src.read(_pad(n))  # lenient: padding may be cut at the stream end
    return typ, data


def _sub_matrix(src: _Raw | _Inflate, endian: str, where: str) -> Any:
    """One nested miMATRIX element (a cell's item or a struct's field value)."""
    typ, n, small = _tag(src, endian, where)
    if typ != _MI_MATRIX or small is not None:
        raise ReproduceError(f"{where}: expected a nested matrix element, got type {typ}")
    if n == 0:  # MATLAB writes an empty field as a bare tag
        return np.zeros((0, 0))
    body = _exact(src, n, where)
    src.read(_pad(n))
    _, value = _matrix(_Raw(io.BytesIO(body)), endian, where, {}, 1 << 30)
    return value


def _chars(typ: int, data: bytes, endian: str, dims: tuple[int, ...]) -> str | list[str]:
    if typ == _MI_UTF8:
        text = data.decode("utf-8")
    elif typ == _MI_UTF16:
        text = data.decode("utf-16-le" if endian == "<" else "utf-16-be")
    elif typ in (3, 4):  # miINT16 / miUINT16: one code unit a character (MATLAB's own choice)
        text = "".join(map(chr, np.frombuffer(data, dtype=np.dtype("u2").newbyteorder(endian))))
    else:  # miINT8 / miUINT8
        text = data.decode("latin-1")
    if len(dims) != 2 or dims[0] <= 1 or len(text) != dims[0] * dims[1]:
        return text
    rows = np.array(list(text)).reshape(dims, order="F")  # a char matrix: one string a row
    return ["".join(r) for r in rows]


def _composite(mx: int, src: _Raw | _Inflate, endian: str, where: str, dims: tuple[int, ...]) -> Any:
    count = int(np.prod(dims))
    if mx == _MX_CHAR:
        typ, data = _element(src, endian, where)
        return _chars(typ, data, endian, dims)
    if mx == _MX_CELL:
        return [_sub_matrix(src, endian, where) for _ in range(count)]
    # struct: field-name length, the names (each padded to that length), then per element per field
    _, flen_b = _element(src, endian, where)
    flen = struct.unpack(endian + "i", flen_b[:4])[0]
    _, names_b = _element(src, endian, where)
    fields = [names_b[i : i + flen].split(b"\0", 1)[0].decode("ascii") for i in range(0, len(names_b), flen)]
    return [{f: _sub_matrix(src, endian, where) for f in fields} for _ in range(count)]


def _matrix(
    src: _Raw | _Inflate, endian: str, where: str, stream: Mapping[str, SinkFactory], chunk: int
) -> tuple[str, Any]:
    _, flags = _element(src, endian, where)
    word = struct.unpack(endian + "I", flags[:4])[0]
    mx = word & 0xFF
    _, dims_b = _element(src, endian, where)
    dims = struct.unpack(endian + f"{len(dims_b) // 4}i", dims_b)
    _, name_b = _element(src, endian, where)
    name = name_b.decode("ascii", "replace")
    if mx in (_MX_CELL, _MX_STRUCT, _MX_CHAR):
        return name, _composite(mx, src, endian, where, tuple(dims))
    if mx not in _MX or (word >> 11) & 1:
        raise ReproduceError(f"{where}: only real numeric, char, cell and struct arrays are supported (class {mx})")
    logical = bool((word >> 9) & 1)
    typ, n, small = _tag(src, endian, where)
    if typ not in _MI:
        raise ReproduceError(f"{where}: variable {name!r} has unsupported storage type {typ}")
    store = np.dtype(_MI[typ]).newbyteorder(endian)
    target = np.dtype(bool) if logical else np.dtype(_MX[mx])
    count = int(np.prod(dims))
    if small is not None:
        data = np.frombuffer(small, dtype=store, count=count).astype(target)
        return name, data.reshape(dims, order="F")
    if n != count * store.itemsize:
        raise ReproduceError(f"{where}: variable {name!r} size mismatch")
    if name in stream:
        # Fortran order: the last dimension is the slowest, so each slice
        # along it is one contiguous block of the stored data.
        per = int(np.prod(dims[:-1])) * store.itemsize
        sink = stream[name](tuple(dims))
        for start in range(0, dims[-1], chunk):
            k = min(chunk, dims[-1] - start)
            block = np.frombuffer(_exact(src, k * per, where), dtype=store).astype(target)
            sink(block.reshape((k, *dims[:-1][::-1])))
        src.read(_pad(n))  # lenient: padding may be cut at the stream end
        return name, None
    data = np.frombuffer(_exact(src, n, where), dtype=store).astype(target)
    src.read(_pad(n))  # lenient: padding may be cut at the stream end
    return name, data.reshape(dims, order="F")


def read_mat(
    path: str | Path, *, stream: Mapping[str, SinkFactory] | None = None, chunk: int = 8192
) -> dict[str, Any]:
    """Read the variables of a v5 ``.mat`` file (numeric arrays as numpy, see the module doc for the rest).

    Variables named in ``stream`` are not returned: ``stream[name](dims)`` is
    called first and the sink it returns receives the data in blocks of ``chunk`` slices along the last MATLAB
    dimension, each block a C-ordered array of shape ``(k, *reversed(dims[:-1]))``.
    """
    stream = stream or {}
    where = str(path)
    out: dict[str, Any] = {}
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or header[:4] == b"\x89HDF" or header[126:128] not in (b"IM", b"MI"):
            raise ReproduceError(
                f"{where}: not a MATLAB v5 .mat file (v7.3/HDF5 files need h5py; or `pip install scipy`)"
            )
        endian = "<" if header[126:128] == b"IM" else ">"
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            typ, n = struct.unpack(endian + "II", head)
            if typ not in (_MI_COMPRESSED, _MI_MATRIX):
                f.seek(n + _pad(n), 1)
                continue
            raw = _Raw(f, n)
            src: _Raw | _Inflate = raw
            if typ == _MI_COMPRESSED:
                src = _Inflate(raw)
                inner, _, _ = _tag(src, endian, where)
                if inner != _MI_MATRIX:
                    raise ReproduceError(f"{where}: unsupported compressed element type {inner}")
            name, arr = _matrix(src, endian, where, stream, chunk)
            while raw.read(1 << 20):  # skip what is left of this element
                pass
            if typ == _MI_MATRIX:
                f.read(_pad(n))
            if arr is not None:
                out[name] = arr
    return out


def write_mat(
    path: str | Path,
    arrays: Mapping[str, Any],
    *,
    compress: bool = True,
    store_as: Mapping[str, str] | None = None,
) -> None:
    """Write variables as a little-endian v5 ``.mat`` file (used by tests).

    Values: numeric arrays; ``str`` (a 1 x N char array); a ``list`` of ``dict`` with the
    same keys (an N x 1 struct array); any other ``list``/``tuple`` (an N x 1 cell array).
    Nested values follow the same rules. ``store_as`` stores a top-level numeric variable's
    data in a smaller type than its class, as MATLAB does (SVHN's double labels are uint8).
    """
    with open(path, "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, written by reproduce".ljust(116, b" ") + b"\0" * 8)
        f.write(struct.pack("<H", 0x0100) + b"IM")
        for name, a in arrays.items():
            matrix = _matrix_bytes(name, a, (store_as or {}).get(name))
            if compress:
                z = zlib.compress(matrix)
                f.write(struct.pack("<II", _MI_COMPRESSED, len(z)) + z)
            else:
                f.write(matrix)


def _el(typ: int, data: bytes, small: bool = False) -> bytes:
    if small and len(data) <= 4:
        return struct.pack("<I", (len(data) << 16) | typ) + data.ljust(4, b"\0")
    return struct.pack("<II", typ, len(data)) + data + b"\0" * _pad(len(data))


def _header(mx: int, dims: Sequence[int], name: str) -> bytes:
    return (_el(6, struct.pack("<II", mx, 0)) + _el(5, struct.pack(f"<{len(dims)}i", *dims))
            + _el(1, name.encode("ascii"), small=True))


def _matrix_bytes(name: str, value: Any, store: str | None = None) -> bytes:
    if isinstance(value, str):
        codes = np.array([ord(c) for c in value], dtype="<u2")
        body = _header(_MX_CHAR, (1, len(value)), name) + _el(4, codes.tobytes())
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        fields = list(value[0])
        if any(list(v) != fields for v in value):
            raise ValueError(f"{name}: every struct element needs the same fields in the same order")
        flen = max(len(f) for f in fields) + 1
        body = _header(_MX_STRUCT, (len(value), 1), name) + _el(5, struct.pack("<i", flen), small=True)
        body += _el(1, b"".join(f.encode("ascii").ljust(flen, b"\0") for f in fields))
        body += b"".join(_matrix_bytes("", v[f]) for v in value for f in fields)
    elif isinstance(value, (list, tuple)):
        body = _header(_MX_CELL, (len(value), 1), name) + b"".join(_matrix_bytes("", v) for v in value)
    else:
        mx = {v: k for k, v in _MX.items()}
        mi = {v: k for k, v in _MI.items()}
        a = np.asarray(value)
        if a.ndim < 2:
            a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(1, 1)
        code = np.dtype(a.dtype).str[1:]
        stored = np.dtype(store or code).newbyteorder("<")
        body = _header(mx[code], a.shape, name) + _el(mi[stored.str[1:]], a.astype(stored).tobytes(order="F"))
    return struct.pack("<II", _MI_MATRIX, len(body)) + body

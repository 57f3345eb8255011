"""A small reader for MATLAB level-5 ``.mat`` files (numeric arrays only).

SVHN ships as ``.mat`` v5 files and scipy is not a dependency. This reads the
numeric variables (compressed or not) and can stream one big variable in
chunks along its last dimension, so the 1.6 GB ``extra`` split never needs two
full copies in memory. Format: MathWorks "MAT-File Format" (level 5).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

import numpy as np

from ..errors import ReproduceError

_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
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


def _matrix(
    src: _Raw | _Inflate, endian: str, where: str, stream: Mapping[str, SinkFactory], chunk: int
) -> tuple[str, np.ndarray | None]:
    _, flags = _element(src, endian, where)
    mx = struct.unpack(endian + "I", flags[:4])[0] & 0xFF
    if mx not in _MX or (struct.unpack(endian + "I", flags[:4])[0] >> 11) & 1:
        raise ReproduceError(f"{where}: only real numeric arrays are supported (class {mx})")
    _, dims_b = _element(src, endian, where)
    dims = struct.unpack(endian + f"{len(dims_b) // 4}i", dims_b)
    _, name_b = _element(src, endian, where)
    name = name_b.decode("ascii", "replace")
    typ, n, small = _tag(src, endian, where)
    if typ not in _MI:
        raise ReproduceError(f"{where}: variable {name!r} has unsupported storage type {typ}")
    store = np.dtype(_MI[typ]).newbyteorder(endian)
    target = np.dtype(_MX[mx])
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
) -> dict[str, np.ndarray]:
    """Read the numeric variables of a v5 ``.mat`` file.

    Variables named in ``stream`` are not returned: ``stream[name](dims)`` is
    called first and the sink it returns receives the data in blocks of ``chunk`` slices along the last MATLAB
    dimension, each block a C-ordered array of shape ``(k, *reversed(dims[:-1]))``.
    """
    stream = stream or {}
    where = str(path)
    out: dict[str, np.ndarray] = {}
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
    arrays: Mapping[str, np.ndarray],
    *,
    compress: bool = True,
    store_as: Mapping[str, str] | None = None,
) -> None:
    """Write numeric arrays as a little-endian v5 ``.mat`` file (used by tests).

    ``store_as`` stores a variable's data in a smaller type than its class, as
    MATLAB does (SVHN's double labels are stored as uint8).
    """
    mx = {v: k for k, v in _MX.items()}
    mi = {v: k for k, v in _MI.items()}

    def el(typ: int, data: bytes, small: bool = False) -> bytes:
        if small and len(data) <= 4:
            return struct.pack("<I", (len(data) << 16) | typ) + data.ljust(4, b"\0")
        return struct.pack("<II", typ, len(data)) + data + b"\0" * _pad(len(data))

    with open(path, "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, written by reproduce".ljust(116, b" ") + b"\0" * 8)
        f.write(struct.pack("<H", 0x0100) + b"IM")
        for name, a in arrays.items():
            a = np.asarray(a)
            code = np.dtype(a.dtype).str[1:]
            body = el(6, struct.pack("<II", mx[code], 0))
            body += el(5, struct.pack(f"<{a.ndim}i", *a.shape))
            body += el(1, name.encode("ascii"), small=True)
            store = np.dtype((store_as or {}).get(name, code)).newbyteorder("<")
            body += el(mi[store.str[1:]], np.asarray(a).astype(store).tobytes(order="F"))
            matrix = struct.pack("<II", _MI_MATRIX, len(body)) + body
            if compress:
                z = zlib.compress(matrix)
                f.write(struct.pack("<II", _MI_COMPRESSED, len(z)) + z)
            else:
                f.write(matrix)

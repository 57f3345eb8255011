"""Finding, checking, downloading and safely unpickling official dataset files."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import shutil
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ChecksumError, ReproduceError
from .catalog import ArchiveFile, DatasetInfo

Progress = Callable[[str], None]


def file_digests(path: str | os.PathLike[str], chunk: int = 1 << 22) -> dict[str, str]:
    """md5 and sha256 of a file in one read."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            md5.update(block)
            sha.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _parse_override(value: str) -> tuple[str, str]:
    kind, _, hexval = value.partition(":")
    if kind not in ("md5", "sha256") or not hexval:
        raise ValueError(f"checksum override must look like 'md5:HEX' or 'sha256:HEX', got {value!r}")
    return kind, hexval.lower()


def verify_archive(
    path: Path,
    archive: ArchiveFile | None,
    *,
    user_sha256: Sequence[str] = (),
    override: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Check ``path`` against its expected checksum before anything reads it.

    Expected values, first found wins: ``override[filename]`` (``"md5:HEX"`` or
    ``"sha256:HEX"``; for tests and private mirrors), the catalog's md5/sha256,
    then the user's ``--sha256`` values (only consulted for files without an
    official checksum; the file's sha256 must be one of them). Returns the
    digests to record in the manifest.
    """
    name = archive.filename if archive is not None else path.name
    digests = file_digests(path)
    user = [u.lower() for u in user_sha256]
    expected: list[tuple[str, str]] = []
    if override and name in override:
        expected.append(_parse_override(override[name]))
    elif archive is not None and archive.has_checksum:
        if archive.md5:
            expected.append(("md5", archive.md5))
        if archive.sha256:
            expected.append(("sha256", archive.sha256))
    for kind, value in expected:
        if digests[kind] != value:
            raise ChecksumError(
                f"{path}: expected {kind} {value}, got {digests[kind]}; the file is corrupted or not "
                f"the official {name} (delete it and fetch it again)"
            )
    if user and expected == [] and digests["sha256"] not in user:
        raise ChecksumError(
            f"{path}: sha256 is {digests['sha256']}, which is not among the values passed with "
            f"--sha256 ({', '.join(user)})"
        )
    if not expected and not user:
        raise ChecksumError(
            f"{path}: no official checksum is published for {name}, so it is not read without one. "
            f"Compute `sha256sum {path}` on a copy you trust and pass it with --sha256 HEX "
            "(once per file); the value is recorded in the dataset manifest."
        )
    return {"file": name, **digests}


def find_files(
    info: DatasetInfo, source: Path, *, required: Sequence[str] | None = None
) -> dict[str, Path]:
    """Map the catalog's archive names to files under ``source``.

    ``source`` may be a directory holding the official files or one of them
    (its siblings are looked up beside it). A single-file dataset accepts a
    renamed file. Files whose catalog note says "optional" may be absent.
    """
    source = Path(source).expanduser()
    names = [a.filename for a in info.archives]
    if not source.exists():
        raise ReproduceError(f"{info.name}: {source} does not exist; expected the official files "
                             f"{', '.join(names)} (or a directory holding them) from {info.homepage}")
    if required is None:
        required = [a.filename for a in info.archives if not a.note.startswith("optional")]
    found: dict[str, Path] = {}
    folder = source if source.is_dir() else source.parent
    if source.is_file():
        if source.name in names:
            found[source.name] = source
        elif len(names) == 1:
            found[names[0]] = source
    for n in names:
        if n not in found and (folder / n).is_file():
            found[n] = folder / n
    missing = [n for n in required if n not in found]
    if missing:
        raise ReproduceError(
            f"{info.name}: cannot find {', '.join(missing)} in {folder}; expected the official files "
            f"{', '.join(names)} from {info.homepage}"
        )
    return found


# -- restricted unpickling ------------------------------------------------------

# Only what numpy arrays and plain containers need: a tampered pickle cannot run code.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core alias in numpy 2
            return super().find_class(module, name)


def safe_unpickle(data: bytes | io.BufferedIOBase | Any, *, encoding: str = "ASCII", what: str = "") -> Any:
    """Unpickle numpy arrays, dicts and lists only; any other global is refused."""
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        return _SafeUnpickler(f, encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ReproduceError(f"{what or 'pickle'}: cannot read ({e})") from None


# -- downloading -------------------------------------------------------------------


def download(info: DatasetInfo, dest: Path, progress: Progress | None = None) -> Path:
    """Fetch every archive of ``info`` into ``dest`` (only called with --download)."""
    if not info.downloadable:
        raise ReproduceError(
            f"{info.name}: --download is not supported ({info.notes or 'no public URL'}); "
            f"get the files from {info.homepage} and pass --from-archive"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for a in info.archives:
        target = dest / a.filename
        if target.exists():
            continue
        if progress:
            progress(f"downloading {a.url} -> {target}")
        if a.gdrive_id:
            try:
                from torchvision.datasets.utils import download_file_from_google_drive
            except ImportError as e:  # pragma: no cover - torchvision is a dependency
                raise ReproduceError(f"{info.name}: torchvision is needed to download from Google Drive") from e
            try:
                download_file_from_google_drive(a.gdrive_id, str(dest), a.filename)
            except RuntimeError as e:
                raise ReproduceError(f"{info.name}: {e} (or download {a.url} by hand)") from None
            continue
        assert a.url is not None
        part = dest / (a.filename + ".part")
        try:
            with urllib.request.urlopen(a.url, timeout=60) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 22)
        except (OSError, http.client.HTTPException) as e:  # a dropped connection is IncompleteRead
            part.unlink(missing_ok=True)
            raise ReproduceError(f"{info.name}: downloading {a.url} failed ({type(e).__name__}: {e}); "
                                 "nothing was kept, run the command again") from None
        os.replace(part, target)
    return dest

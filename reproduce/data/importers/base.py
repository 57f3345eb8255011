"""What every importer shares: the request, the ``IMPORTERS`` registry, and the official files.

An importer turns one catalog dataset's official files into the prepared format; each source
format has its own module in this package and registers its importers here. The helpers below
find the official files, check them before anything opens them, download them (only with
``--download``), unpickle them with a restricted unpickler and read MATLAB files.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import tarfile
import urllib.error
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ...errors import ChecksumError, ReproduceError
from ...registry import Registry
from ..catalog import ArchiveFile, DatasetInfo
from ..storage.prepared import PreparedWriter

Progress = Callable[[str], None]


@dataclass
class ImportRequest:
    info: DatasetInfo
    root: Path
    from_archive: Path | None = None
    from_folder: Path | None = None
    # robustbench's data_dir (holding CIFAR-10-C/): read through its loader (npy.py)
    from_robustbench: Path | None = None
    sha256: tuple[str, ...] = ()
    # {filename: "md5:HEX" | "sha256:HEX"} replacing catalog checksums (tests, mirrors).
    checksums: Mapping[str, str] | None = None
    # {split: n} replacing the catalog's expected sizes; {} disables the check.
    expected_sizes: Mapping[str, int] | None = None
    force: bool = False
    progress: Progress | None = None
    files: list[dict[str, str]] = field(default_factory=list)

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    @property
    def source(self) -> Path:
        """The one file source given (``--from-archive`` or ``--from-folder``)."""
        src = self.from_archive or self.from_folder
        assert src is not None, "an importer that reads files was called without a source"
        return src

    def verify(self, path: Path, filename: str | None = None) -> None:
        archive = None
        name = filename or path.name
        try:
            archive = self.info.archive(name)
        except KeyError:
            pass
        self.say(f"verifying {path}")
        self.files.append(verify_archive(path, archive, user_sha256=self.sha256, override=self.checksums))

    def verified(self, source: Path | None = None) -> dict[str, Path]:
        """Every official file under ``source`` (default: the request's source), each checked first."""
        files = find_files(self.info, source or self.source)
        for name, path in files.items():
            self.verify(path, name)
        return files

    def verify_md5(self, path: Path, expected: str | None) -> None:
        """Check an extracted file against an md5 the catalog lists for it."""
        from torchvision.datasets.utils import calculate_md5

        if self.checksums and path.name in self.checksums:
            kind, _, expected = self.checksums[path.name].partition(":")
            assert kind == "md5", "extracted files are checked by md5"
        if expected is None:
            raise ChecksumError(f"{path}: no checksum is known for this file, so it is not read")
        actual = calculate_md5(path)
        if actual != expected:
            raise ChecksumError(f"{path}: expected md5 {expected}, got {actual}")
        self.files.append({"file": path.name, "md5": actual})

    def check_count(self, split: str, n: int) -> None:
        sizes = self.info.split_sizes if self.expected_sizes is None else self.expected_sizes
        if split in sizes and sizes[split] != n:
            raise ReproduceError(
                f"{self.info.name}/{split}: found {n} images, the official split has {sizes[split]}; "
                "the source is incomplete or not the official release"
            )

    def writer(self, **overrides: Any) -> PreparedWriter:
        info = self.info
        how = ("from-archive" if self.from_archive else "from-robustbench" if self.from_robustbench
               else "from-folder")
        src = self.from_archive or self.from_robustbench or self.from_folder
        kw: dict[str, Any] = dict(
            num_classes=info.num_classes, image_size=info.image_size, channels=info.channels,
            classes=info.classes, mean=info.mean, std=info.std,
            source={"description": f"{info.title}, {info.homepage}", "licence": info.licence,
                    "import": how, "path": str(src), "files": self.files},
            extra={"catalog_params": dict(info.params)} if info.params else None,
            overwrite=self.force,
        )
        kw.update(overrides)
        return PreparedWriter(info.name, self.root, **kw)


Importer = Callable[[ImportRequest], Path]
IMPORTERS: Registry[Importer] = Registry("importer")


# -- finding and checking the official files ---------------------------------------------


def file_digests(path: str | os.PathLike[str], chunk: int = 1 << 22) -> dict[str, str]:
    """md5 and sha256 of a file in one read."""
    # hand-written: torchvision's calculate_md5 gives md5 only, and multi-GB archives are read once for both
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


def inside(folder: Path, name: str) -> Path:
    """``folder/name`` when an extracted copy wraps its files in that top-level folder, else ``folder``."""
    return folder / name if (folder / name).is_dir() else folder


def tar_files(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of every regular file, in archive order (works on streams)."""
    for m in tar:
        if m.isfile():
            f = tar.extractfile(m)
            assert f is not None
            yield m.name, f.read()


def load_mat(source: Path | bytes, what: str, **kw: Any) -> dict[str, Any]:
    """The variables of a MATLAB (v4-v7.2) file, read by ``scipy.io.loadmat`` (``kw`` passed on)."""
    import scipy.io

    try:
        return scipy.io.loadmat(io.BytesIO(source) if isinstance(source, bytes) else str(source), **kw)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise ReproduceError(f"{what}: cannot read the MATLAB file ({e})") from None


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
    from torchvision.datasets.utils import download_file_from_google_drive, download_url

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
        # into a .part file renamed when complete: an interrupted download never passes for the file
        part = dest / (a.filename + ".part")
        part.unlink(missing_ok=True)
        try:
            if a.gdrive_id:
                download_file_from_google_drive(a.gdrive_id, str(dest), part.name, a.md5)
            else:
                assert a.url is not None
                download_url(a.url, str(dest), part.name, a.md5)
        except (OSError, RuntimeError, urllib.error.URLError, http.client.HTTPException) as e:
            part.unlink(missing_ok=True)  # a dropped connection is IncompleteRead; a bad md5 a RuntimeError
            raise ReproduceError(f"{info.name}: downloading {a.url} failed ({type(e).__name__}: {e}); "
                                 "nothing was kept, run the command again") from None
        os.replace(part, target)
    return dest

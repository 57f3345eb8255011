"""``reproduce data ...``: import, list, verify and generate datasets.

The top-level CLI calls ``add_subcommands(subparsers)``; every leaf parser
sets ``func`` to a handler taking the parsed Namespace and returning an exit
code. User errors are raised as ``ReproduceError`` subclasses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from .catalog import DATASETS
from .storage.prepared import MANIFEST, dataset_dir, default_root, read_manifest
from .storage.verify import verify


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        dest="root",
        type=Path,
        default=None,
        help="data directory (default: $REPRODUCE_DATA_DIR, else ./data)",
    )
    p.add_argument("--root", dest="root", type=Path, help=argparse.SUPPRESS)  # the old spelling


def cmd_import(args: argparse.Namespace) -> int:
    from .importers import import_dataset

    path = import_dataset(
        args.name,
        args.root,
        from_archive=args.from_archive,
        from_folder=args.from_folder,
        from_robustbench=args.from_robustbench,
        allow_download=args.download,
        sha256=args.sha256 or (),
        force=args.force,
        progress=_progress,
    )
    meta = read_manifest(args.name, args.root)
    sizes = ", ".join(f"{s}={e['n']}" for s, e in meta["splits"].items())
    print(f"{args.name}: prepared at {path} ({sizes})")
    return 0


def _status(name: str, root: Path | None) -> tuple[str, str]:
    d = dataset_dir(name, root)
    if (d / MANIFEST).is_file():
        try:
            meta = read_manifest(name, root)
        except Exception as e:  # a damaged manifest is a status, not a crash, here
            return "damaged", str(e).split(".")[0]
        splits = ", ".join(f"{s}={e['n']}" for s, e in meta["splits"].items())
        kind = "synthetic" if meta.get("synthetic") else "prepared"
        return kind, splits if len(splits) < 80 else f"{len(meta['splits'])} splits"
    if d.exists():
        return "incomplete", "no manifest (an interrupted import?)"
    return "missing", ""


def cmd_list(args: argparse.Namespace) -> int:
    root = args.root
    rows = [(n, *_status(n, root)) for n in DATASETS.names()]
    base = root if root is not None else default_root()
    if base.is_dir():  # generated or custom datasets beside the catalog ones
        for d in sorted(base.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and d.name not in DATASETS:
                rows.append((d.name, *_status(d.name, root)))
    width = max(len(r[0]) for r in rows)
    print(f"data directory: {base.resolve()}")
    for name, status, detail in rows:
        print(f"  {name:<{width}}  {status:<10}  {dataset_dir(name, root)}" + (f"  [{detail}]" if detail else ""))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    sizes = verify(args.name, args.root)
    for split, n in sizes.items():
        print(f"{args.name}/{split}: {n} images, checksums OK")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generated.synthetic import write_generated

    if (args.related_to is None) != (args.relatedness is None):
        raise ConfigError("data generate: --related-to and --relatedness go together")
    path = write_generated(
        args.name,
        args.root,
        args.classes,
        args.size,
        args.n_train,
        args.n_test,
        domain=args.domain,
        seed=args.seed,
        related_to=args.related_to,
        relatedness=args.relatedness or 0.0,
        channels=args.channels,
        related_classes=args.related_classes,
    )
    gen = read_manifest(args.name, args.root)["generation"]
    print(f"{args.name}: generated at {path} ({json.dumps(gen, sort_keys=True)})")
    return 0


def add_subcommands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    data = subparsers.add_parser("data", help="prepare, list, verify and generate datasets")
    sub = data.add_subparsers(dest="data_command", metavar="{import,list,verify,generate}", required=True)

    p = sub.add_parser(
        "import",
        help="prepare a catalog dataset from its official files",
        description="Prepare a catalog dataset. Archives are checksum-verified before they are read; "
        "nothing is downloaded unless --download is given.",
    )
    p.add_argument("name", choices=DATASETS.names(), metavar="NAME", help="; ".join(DATASETS.names()))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-archive", type=Path, metavar="PATH", help="official archive, or a directory holding them")
    src.add_argument("--from-folder", type=Path, metavar="DIR", help="extracted files or an image tree DIR/<split>/<class>/")
    src.add_argument("--from-robustbench", type=Path, metavar="DIR",
                     help="cifar10-c: robustbench's data_dir (DIR/CIFAR-10-C/*.npy), read through its loader")
    src.add_argument("--download", action="store_true", help="fetch the official files (needs internet)")
    p.add_argument(
        "--sha256",
        action="append",
        metavar="HEX",
        help="sha256 of a file that has no official checksum (repeat once per file)",
    )
    p.add_argument("--force", action="store_true", help="replace an already prepared dataset")
    _root_arg(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("list", help="every catalog dataset with its status and path")
    _root_arg(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="recompute a prepared dataset's checksums")
    p.add_argument("name", metavar="NAME")
    _root_arg(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("generate", help="write a deterministic synthetic dataset (smoke scale, tests)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--size", type=int, required=True, help="image side in pixels")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--n-test", type=int, required=True)
    p.add_argument("--domain", type=int, default=0, help="domain id: background, colours, texture, classes")
    p.add_argument("--related-to", type=int, default=None, metavar="D", help="domain whose class prototypes to share")
    p.add_argument("--relatedness", type=float, default=None, metavar="R", help="0 (unrelated) .. 1 (same prototypes)")
    p.add_argument("--related-classes", type=int, default=None, help="class count of the related domain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, default=3)
    _root_arg(p)
    p.set_defaults(func=cmd_generate)

"""Dataset commands: `inspect`, `demo-data`, `import-zip`, `download-flowers`, `datasets`.

Everything the Dataset page does to get data in (and to list and delete the
datasets the studio made), headless.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from engine.commands.table import format_table
from engine.core.progress import TerminalBar

if TYPE_CHECKING:
    from engine.data.dataset import Dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `inspect` and `demo-data` commands.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    inspect = subparsers.add_parser(
        "inspect",
        help="check a folder of photos (one sub-folder per class): classes, split, problems",
        description="Scan a folder-per-class dataset and print the class table (label, folder, "
        "images, train/validation/test), the files skipped with reasons, duplicates and "
        "warnings. Exits with 2 only when the dataset cannot be trained on.",
    )
    inspect.add_argument("--image_dir", required=True, help="folder holding one sub-folder per class")
    inspect.add_argument(
        "--validation_percentage",
        type=float,
        default=10,
        help="share of each class for validation, as in retrain.py (default 10)",
    )
    inspect.add_argument(
        "--testing_percentage",
        type=float,
        default=10,
        help="share of each class for test, as in retrain.py (default 10)",
    )
    inspect.add_argument("--no_cache", action="store_true", help="check every file again")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON instead")
    inspect.set_defaults(func=_inspect)

    demo = subparsers.add_parser(
        "demo-data",
        help="write the generated demo dataset (5 classes of drawn flowers)",
        description="Generate the demo dataset (deterministic, a few seconds) and print its folder.",
    )
    demo.add_argument(
        "--dest", default=None, help="folder to write it to (default: <datasets dir>/demo)"
    )
    demo.set_defaults(func=_demo_data)

    imported = subparsers.add_parser(
        "import-zip",
        help="unpack a zip of class folders into the datasets folder, safely",
        description="Import a zip holding one folder per class (at the top or inside one top "
        "folder). Unsafe entries (../, absolute paths, links) and zip bombs are refused and "
        "nothing is written; the import is atomic. Prints the new dataset folder.",
    )
    imported.add_argument("--zip", required=True, dest="zip_path", help="the .zip file")
    imported.add_argument(
        "--dest", default=None, help="folder to import into (default: the datasets folder)"
    )
    imported.add_argument("--name", default=None, help="dataset name (default: the zip's name)")
    imported.set_defaults(func=_import_zip)

    flowers = subparsers.add_parser(
        "download-flowers",
        help="download and extract the codelab's flower_photos (218 MiB), resumable",
        description="Download flower_photos.tgz with a progress bar, check its SHA-256, extract "
        "it, and print the dataset folder. An interrupted download resumes when run again.",
    )
    flowers.add_argument(
        "--dest", default=None, help="folder to put it in (default: the datasets folder)"
    )
    flowers.add_argument("--url", default=None, help="another address for the same archive")
    flowers.add_argument(
        "--sha256",
        default=None,
        help="expected SHA-256 when --url is given (default: the official archive's when no "
        "--url; none otherwise)",
    )
    flowers.set_defaults(func=_download_flowers)

    stored = subparsers.add_parser(
        "datasets",
        help="list the datasets the studio made (demo, imported zips, downloads); --delete one",
        description="List the datasets Retrain Studio generated, imported or downloaded into the "
        "datasets folder (name, kind, size, files, when, from where), or delete one with "
        "--delete NAME. Only folders the studio made are listed or deleted; your own folders "
        "are never touched.",
    )
    stored.add_argument("--delete", metavar="NAME", default=None, help="delete this dataset")
    stored.add_argument(
        "--dest", default=None, help="the datasets folder (default: the studio's datasets folder)"
    )
    stored.add_argument("--json", action="store_true", help="print the list as JSON instead")
    stored.set_defaults(func=_datasets)


def _inspect(args: argparse.Namespace) -> int:
    from engine.data.scan import scan_dataset

    dataset = scan_dataset(
        args.image_dir,
        validation_percentage=args.validation_percentage,
        testing_percentage=args.testing_percentage,
        progress=TerminalBar(),
        use_cache=not args.no_cache,
    )
    if args.json:
        json.dump(dataset.summary(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(dataset, sys.stdout)
    return 0 if dataset.trainable else 2


def print_report(dataset: Dataset, out: TextIO) -> None:
    """Print a `Dataset` as the `inspect` command does.

    Args:
        dataset: an `engine.data.dataset.Dataset`.
        out: the stream to write to.
    """
    total = len(dataset.images)
    out.write(f"Dataset {dataset.root}\n")
    out.write(
        f"{len(dataset.classes)} classes, {total} usable images, {len(dataset.problems)} skipped; "
        f"split {dataset.validation_percentage:g}% validation / {dataset.testing_percentage:g}% test; "
        f"fingerprint {dataset.fingerprint[:12]}\n"
    )
    out.write("Labels are folder names in lower case with runs of other characters as one space.\n\n")
    if dataset.classes:
        rows = [["label", "folder", "images", "train", "validation", "test"]]
        for c in dataset.classes:
            rows.append([c.label, c.folder, str(c.count), str(c.train), str(c.validation), str(c.test)])
        rows.append(
            [
                "(all)",
                "",
                str(total),
                *(str(len(dataset.split(s))) for s in ("train", "validation", "test")),
            ]
        )
        out.write(format_table(rows, right_align_from=2, rule=True, indent="  ") + "\n")
    stats = dataset.stats
    if stats.get("formats"):
        formats = ", ".join(f"{k} {v}" for k, v in stats["formats"].items())
        w, h = stats["width"], stats["height"]
        out.write(
            f"\nImages: {formats}; width {w['min']}-{w['max']} (median {w['median']:g}), "
            f"height {h['min']}-{h['max']} (median {h['median']:g}), "
            f"{stats['total_bytes'] / 1e6:.1f} MB\n"
        )
    if dataset.problems:
        out.write(f"\nSkipped files ({len(dataset.problems)}):\n")
        out.writelines(f"  {p.rel_path}: {p.reason} [{p.kind}]\n" for p in dataset.problems)
    if dataset.duplicates:
        out.write(f"\nDuplicates ({len(dataset.duplicates)} group(s) of identical files):\n")
        out.writelines(f"  {d.kind}: {', '.join(d.rel_paths)}\n" for d in dataset.duplicates)
    if dataset.warnings:
        out.write("\nWarnings:\n")
        out.writelines(f"  - {text}\n" for text in dataset.warnings)
    if dataset.errors:
        out.write("\nCannot train on this dataset:\n")
        out.writelines(f"  - {text}\n" for text in dataset.errors)
    else:
        out.write("\nReady to train.\n")


def _demo_data(args: argparse.Namespace) -> int:
    from engine.data.demo import ensure_demo_dataset

    folder = ensure_demo_dataset(args.dest, progress=TerminalBar())
    print(folder)
    return 0


def _import_zip(args: argparse.Namespace) -> int:
    from engine.data.sources import import_zip

    folder = import_zip(args.zip_path, dest_root=args.dest, name=args.name, progress=TerminalBar())
    print(folder)
    return 0


def _download_flowers(args: argparse.Namespace) -> int:
    from engine.data.download import FLOWER_PHOTOS_SHA256, FLOWER_PHOTOS_URL, download_flower_photos

    url = args.url or FLOWER_PHOTOS_URL
    sha256 = args.sha256 if args.url else (args.sha256 or FLOWER_PHOTOS_SHA256)
    folder = download_flower_photos(url=url, sha256=sha256, dest_root=args.dest, progress=TerminalBar())
    print(folder)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from engine.core.paths import datasets_dir
    from engine.data.library import delete_dataset, list_datasets

    if args.delete is not None:
        print(f"Deleted {delete_dataset(args.delete, args.dest)}")
        return 0
    found = list_datasets(args.dest)
    if args.json:
        rows = [{**vars(d), "path": str(d.path)} for d in found]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not found:
        where = args.dest or datasets_dir()
        print(f"No datasets made by the studio in {where}; see `demo-data`, `import-zip`.")
        return 0
    rows = [["name", "kind", "MB", "files", "created", "source"]]
    rows += [
        [d.name, d.kind, f"{d.size_bytes / 1e6:.1f}", str(d.files), d.created, d.source or ""]
        for d in found
    ]
    print(format_table(rows, rule=True))
    return 0

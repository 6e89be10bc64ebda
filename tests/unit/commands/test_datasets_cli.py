"""`python -m engine inspect` and `demo-data`, run as a user would, in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_engine
from tests.support.factories import flower_tgz, photo_entries, write_class_folders, zip_bytes


def test_demo_data_then_inspect_shows_the_class_table(tmp_path: Path) -> None:
    made = run_engine("demo-data", "--dest", str(tmp_path / "demo"), home=tmp_path / "home")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(tmp_path / "demo")
    assert "demo-data" in made.stderr and "300/300" in made.stderr  # the progress bar

    shown = run_engine("inspect", "--image_dir", str(tmp_path / "demo"), home=tmp_path / "home")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    header = next(line for line in lines if "label" in line and "validation" in line)
    assert header.split() == ["label", "folder", "images", "train", "validation", "test"]
    for label in ("daisy", "dandelion", "roses", "sunflowers", "tulips"):
        row = next(line.split() for line in lines if line.split()[:1] == [label])
        assert row[2] == "60" and sum(map(int, row[3:6])) == 60
    assert "Ready to train." in shown.stdout


def test_inspect_lists_broken_files_with_reasons_and_still_succeeds(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 4, "dogs": 4})
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "notes.jpg").write_text("not a photo")
    whole = (root / "dogs" / "dogs_000.jpg").read_bytes()
    (root / "dogs" / "half.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    out = run_engine("inspect", "--image_dir", str(root), home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert "cats/empty.jpg: empty file" in out.stdout
    assert "dogs/notes.jpg: not an image" in out.stdout
    assert "dogs/half.jpg: truncated" in out.stdout
    assert "has only 4 images" in out.stdout  # the small-class warning


def test_inspect_exits_2_with_one_line_when_dataset_cannot_be_trained(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"only": 5})
    out = run_engine("inspect", "--image_dir", str(root), home=tmp_path / "home")
    assert out.returncode == 2
    assert "at least 2 classes" in out.stdout
    assert "Traceback" not in out.stderr


def test_inspect_on_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    out = run_engine("inspect", "--image_dir", str(tmp_path / "nope"), home=tmp_path / "home")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: ") and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_inspect_json_honours_the_split_percentages(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"a": 30, "b": 30})
    out = run_engine(
        "inspect",
        "--image_dir",
        str(root),
        "--validation_percentage",
        "30",
        "--testing_percentage",
        "30",
        "--json",
        home=tmp_path / "home",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["validation_percentage"], summary["testing_percentage"]) == (30, 30)
    assert summary["split_counts"]["train"] < 40  # roughly 24 of 60 expected


def test_import_zip_command_prints_the_new_dataset_and_refuses_escapes(tmp_path: Path) -> None:
    good = tmp_path / "pets.zip"
    good.write_bytes(zip_bytes(photo_entries("pets/")))
    dest = tmp_path / "datasets"
    out = run_engine("import-zip", "--zip", str(good), "--dest", str(dest), home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(dest / "pets")
    assert sorted(p.name for p in (dest / "pets").iterdir()) == [
        ".retrain-studio-dataset.json",  # marks it as the studio's, so `datasets --delete` may delete it
        "daisy",
        "roses",
    ]

    evil = tmp_path / "evil.zip"
    evil.write_bytes(zip_bytes({"../escape.txt": b"x", **photo_entries()}))
    out = run_engine("import-zip", "--zip", str(evil), "--dest", str(dest), home=tmp_path / "home")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["pets"]


def test_download_flowers_command_fetches_checks_and_extracts_a_file_url(tmp_path: Path) -> None:
    import hashlib

    archive = tmp_path / "mirror" / "flower_photos.tgz"
    archive.parent.mkdir()
    archive.write_bytes(flower_tgz())
    url = archive.as_uri()
    dest = tmp_path / "datasets"
    wrong = run_engine(
        "download-flowers",
        "--url",
        url,
        "--sha256",
        "0" * 64,
        "--dest",
        str(dest),
        home=tmp_path / "home",
    )
    assert wrong.returncode == 2 and "error: " in wrong.stderr
    assert not (dest / "flower_photos").exists()

    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    out = run_engine(
        "download-flowers",
        "--url",
        url,
        "--sha256",
        sha,
        "--dest",
        str(dest),
        home=tmp_path / "home",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(dest / "flower_photos")
    assert sorted(p.name for p in (dest / "flower_photos").iterdir()) == [
        ".retrain-studio-dataset.json",  # marks it as the studio's, so `datasets --delete` may delete it
        "LICENSE.txt",
        "daisy",
        "roses",
    ]
    assert "download" in out.stderr  # the progress bar


def test_datasets_lists_and_deletes_only_what_the_studio_made(tmp_path: Path) -> None:
    home = tmp_path / "home"
    archive = tmp_path / "birds.zip"
    archive.write_bytes(zip_bytes(photo_entries()))
    assert run_engine("import-zip", "--zip", str(archive), home=home).returncode == 0
    write_class_folders(home / "datasets" / "my_photos", {"a": 3, "b": 3})

    listed = run_engine("datasets", home=home)
    assert listed.returncode == 0, listed.stderr
    header, _rule, *rows = listed.stdout.splitlines()
    assert header.split() == ["name", "kind", "MB", "files", "created", "source"]
    assert [row.split()[:2] + row.split()[3:4] + row.split()[-1:] for row in rows] == [
        ["birds", "import", "6", "birds.zip"]
    ]
    as_json = json.loads(run_engine("datasets", "--json", home=home).stdout)
    assert [(d["name"], d["kind"], d["files"]) for d in as_json] == [("birds", "import", 6)]

    refused = run_engine("datasets", "--delete", "my_photos", home=home)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert "not made by Retrain Studio" in refused.stderr
    assert (home / "datasets" / "my_photos" / "a").is_dir()

    deleted = run_engine("datasets", "--delete", "birds", home=home)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"Deleted {home / 'datasets' / 'birds'}"
    assert not (home / "datasets" / "birds").exists()
    assert "No datasets made by the studio" in run_engine("datasets", home=home).stdout

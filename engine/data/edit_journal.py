"""The journal behind `engine.data.edits`: one JSON-lines file per dataset, and its crash recovery.

`<studio home>/edits/<dataset key>/journal.jsonl` holds two lines per edit:
an `intent` line (the op and every planned `from` -> `to` move; `from` is
null for a photo written from bytes) and, once every file is in place, a
`done` line listing the moves made. `Journal.reconcile` finishes an edit
that has an intent but no `done` line (a crash between the two): each move
is looked up on disk and completed, and a `done` line is written with the
moves that were made. Paths outside the dataset root and its quarantine
folder are never touched, even if the journal names them.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core import jsonlines, paths
from engine.core.errors import StudioError
from engine.core.fsutil import atomic_write_bytes
from engine.data.splits import same_split_name, split_key

OPS = ("move", "set_aside", "add", "keep", "undo")

# Tests only: called after each file is in place and before the journal records the edit
# (a crash test kills the process there).
after_each_move: Callable[[], None] | None = None


@dataclass(frozen=True)
class Edit:
    """One change to a dataset, as the journal records it.

    Args:
        id: the edit's id (what `undo` takes).
        op: "move", "set_aside", "add", "keep" or "undo".
        moves: the (from, to) absolute paths moved; `from` is None for an added photo.
        paths: for "keep", the photos kept (relative to the dataset root).
        time: when it was made (ISO 8601, UTC).
        undoes: for "undo", the id of the edit it undid.
        undone_by: the id of the undo that reverted this edit, if any.
    """

    id: str
    op: str
    moves: tuple[tuple[str | None, str], ...] = ()
    paths: tuple[str, ...] = ()
    time: str = ""
    undoes: str | None = None
    undone_by: str | None = field(default=None, compare=False)

    def describe(self, root: Path) -> str:
        """One line for a history list ("moved roses/1.jpg to tulips")."""

        def rel(p: str | None) -> str:
            return display(Path(p), root) if p else "?"

        if self.op == "keep":
            return f"kept {', '.join(self.paths)}"
        if not self.moves:
            return f"{self.op} (nothing moved)"
        first = self.moves[0]
        more = f" and {len(self.moves) - 1} more" if len(self.moves) > 1 else ""
        verb = {"move": "moved", "set_aside": "set aside", "add": "added", "undo": "put back"}
        if self.op == "add":
            return f"added {rel(first[1])}{more}"
        return f"{verb.get(self.op, self.op)} {rel(first[0])} -> {rel(first[1])}{more}"


def display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return f"(set aside) {path.name}"


def studio_home_dir(studio_home: str | os.PathLike[str] | None) -> Path:
    return Path(studio_home).expanduser() if studio_home is not None else paths.home_dir()


def dataset_key(root: str | os.PathLike[str]) -> str:
    """A folder name for a dataset's journal and quarantine: its name and a hash of its real path."""
    real = Path(root).expanduser().resolve()
    digest = hashlib.sha256(str(real).encode("utf-8")).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", real.name)[:40] or "dataset"
    return f"{safe}-{digest}"


def edits_dir(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> Path:
    """Where a dataset's journal and opt-in live: `<studio home>/edits/<dataset key>`."""
    return studio_home_dir(studio_home) / "edits" / dataset_key(root)


def quarantine_dir(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> Path:
    """Where a dataset's set-aside photos go: `<studio home>/quarantine/<dataset key>`."""
    return studio_home_dir(studio_home) / "quarantine" / dataset_key(root)


def journal_file(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> Path:
    """The dataset's journal (JSON lines)."""
    return edits_dir(root, studio_home=studio_home) / "journal.jsonl"


def free_name(folder: Path, name: str, taken: set[Path]) -> Path:
    """`folder/name`, or a name with the same `split_key` plus `_nohash_N` (same split) when taken."""
    target = folder / name
    key, suffix = split_key(name), os.path.splitext(name)[1]
    n = 2
    while target.exists() or target.is_symlink() or target in taken:
        target = folder / same_split_name(key, str(n), suffix)
        n += 1
    taken.add(target)
    return target


def move_file(src: Path, dst: Path) -> None:
    """Move `src` to the free path `dst`: a rename, or across file systems a copy renamed into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        raise StudioError(f"{dst} exists already; nothing was moved")
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    atomic_write_bytes(dst, src.read_bytes())
    shutil.copystat(src, dst)
    src.unlink()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Journal:
    """The journal of one dataset, read and written under its lock."""

    def __init__(self, root: Path, studio_home: str | os.PathLike[str] | None) -> None:
        self.root = root
        self.home = studio_home_dir(studio_home)
        self.folder = edits_dir(root, studio_home=studio_home)
        self.file = self.folder / "journal.jsonl"
        self.quarantine = quarantine_dir(root, studio_home=studio_home)

    def records(self) -> list[dict[str, Any]]:
        jsonlines.cut_torn_tail(self.file, what="the dataset's edit journal")
        records, _ = jsonlines.read_lines(self.file)
        return records

    def allowed_place(self, path: Path) -> bool:
        real = path.parent.resolve() / path.name  # no ".." or linked folder slips past
        return real.is_relative_to(self.root) or real.is_relative_to(self.quarantine.resolve())

    def run(
        self,
        op: str,
        moves: list[tuple[Path | None, Path]],
        data: dict[Path, bytes] | None = None,
        **extra: Any,
    ) -> Edit:
        """Write the intent, make the moves, write `done`; the caller holds the lock.

        Args:
            op: one of `OPS`.
            moves: (from, to) pairs; `from` None writes `data[to]` there (atomically).
            data: the bytes of the photos written from nothing. Defaults to None.
            **extra: more facts for the intent line ("paths" of a keep, "undoes").
        """
        edit_id = new_id()
        listed = [[str(a) if a else None, str(b)] for a, b in moves]
        jsonlines.append_line(
            self.file,
            {"id": edit_id, "state": "intent", "op": op, "moves": listed, "time": now_iso(), **extra},
        )
        for src, dst in moves:
            if src is not None:
                move_file(src, dst)
            else:
                atomic_write_bytes(dst, (data or {})[dst])
            if after_each_move is not None:
                after_each_move()
        jsonlines.append_line(self.file, {"id": edit_id, "state": "done", "moves": listed})
        return Edit(
            edit_id,
            op,
            tuple((a, b) for a, b in listed),
            tuple(extra.get("paths", ())),
            now_iso(),
            extra.get("undoes"),
        )

    def plan_undo(self, edit_id: str | None) -> tuple[Edit, list[tuple[Path | None, Path]], list[Path]]:
        """What undoing an edit moves: `(the edit, moves back, added photos to set aside)`.

        Raises:
            StudioError: nothing to undo, an unknown id, an edit already undone, or a photo
                no longer where the edit put it, or its old place taken (nothing moves then).
        """
        edits = [e for e in self.edits() if e.op != "undo"]
        if edit_id is None:
            todo = [e for e in edits if not e.undone_by]
            if not todo:
                raise StudioError("there is nothing to undo")
            edit = todo[-1]
        else:
            found = [e for e in edits if e.id == edit_id]
            if not found:
                raise StudioError(
                    f"edit {edit_id!r} is not in this dataset's history (an undo cannot be undone)"
                )
            edit = found[0]
            if edit.undone_by:
                raise StudioError(f"edit {edit_id!r} was undone already")
        back: list[tuple[Path | None, Path]] = []
        aside: list[Path] = []
        for src, dst in edit.moves:
            now, before = Path(dst), Path(src) if src else None
            if not self.allowed_place(now) or not now.is_file() or now.is_symlink():
                raise StudioError(
                    f"{display(now, self.root)} is no longer where the edit put it: cannot undo it"
                )
            if before is None:
                aside.append(now)
            elif not self.allowed_place(before) or before.exists():
                raise StudioError(
                    f"{display(before, self.root)} is taken again: cannot put the photo back"
                )
            else:
                back.append((now, before))
        return edit, back, aside

    def reconcile(self) -> list[str]:
        """Finish every edit that has an intent but no `done` line; return their ids."""
        records = self.records()
        finished = {r.get("id") for r in records if r.get("state") == "done"}
        healed = []
        for record in records:
            if record.get("state") != "intent" or record.get("id") in finished:
                continue
            made = []
            for pair in record.get("moves") or []:
                src = Path(pair[0]) if pair[0] else None
                dst = Path(pair[1])
                if not self.allowed_place(dst) or (src is not None and not self.allowed_place(src)):
                    continue  # a tampered journal: never touch anything elsewhere
                if src is not None and src.is_file() and not src.is_symlink():
                    if dst.exists():  # a copy across file systems was interrupted
                        if dst.stat().st_size != src.stat().st_size:
                            continue
                        src.unlink()
                    else:
                        move_file(src, dst)
                if dst.exists():
                    made.append(pair)
            jsonlines.append_line(
                self.file, {"id": record.get("id"), "state": "done", "moves": made, "recovered": True}
            )
            healed.append(str(record.get("id")))
        return healed

    def edits(self) -> list[Edit]:
        records = self.records()
        intents = {r.get("id"): r for r in records if r.get("state") == "intent"}
        out: list[Edit] = []
        undone: dict[str, str] = {}
        for record in records:
            intent = intents.get(record.get("id"))
            if record.get("state") != "done" or intent is None or intent.get("op") not in OPS:
                continue
            moves = tuple(
                (m[0], m[1]) for m in record.get("moves") or [] if isinstance(m, list) and len(m) == 2
            )
            edit = Edit(
                str(intent["id"]),
                intent["op"],
                moves,
                tuple(intent.get("paths") or ()),
                str(intent.get("time", "")),
                intent.get("undoes"),
            )
            if edit.undoes:
                undone[edit.undoes] = edit.id
            out.append(edit)
        return [Edit(e.id, e.op, e.moves, e.paths, e.time, e.undoes, undone.get(e.id)) for e in out]


def new_id() -> str:
    """A new edit id: the UTC time and 6 random hex digits (sorts by time)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"

"""What a batch reads: files, folders (recursively) and zip archives, as one ordered list of inputs.

Zip members are read into memory one at a time and never extracted, so a member named
``../../etc/x.png`` cannot write anywhere; names are only labels of the results.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from bcc_model.imaging.io import IMAGE_SUFFIXES
from bcc_model.imaging.wsi import SLIDE_SUFFIXES

__all__ = ["InputItem", "iter_inputs", "READABLE_SUFFIXES"]

READABLE_SUFFIXES = frozenset(IMAGE_SUFFIXES | SLIDE_SUFFIXES)


@dataclass(frozen=True)
class InputItem:
    """One input: its name as the user gave it, and how to get it (a path, or bytes from an archive)."""

    name: str
    path: Path | None = None
    load: Callable[[], bytes] | None = None

    def source(self) -> Path | bytes:
        return self.path if self.path is not None else self.load()


def _members(archive: Path) -> Iterator[InputItem]:
    with zipfile.ZipFile(archive) as handle:
        names = [info.filename for info in handle.infolist()
                 if not info.is_dir() and Path(info.filename).suffix.lower() in READABLE_SUFFIXES]

    def loader(member: str) -> Callable[[], bytes]:
        def load() -> bytes:
            with zipfile.ZipFile(archive) as handle:
                return handle.read(member)
        return load

    for member in sorted(names):
        yield InputItem(name=f"{archive}!{member}", load=loader(member))


def iter_inputs(paths: Sequence[Path]) -> Iterator[InputItem]:
    """Every input under ``paths``, in order: files as given, folders walked in sorted order, zips' members.

    A path that does not exist, or a bad zip, is still yielded (as a file), so it becomes a row
    with its error instead of vanishing.
    """
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in READABLE_SUFFIXES:
                    yield InputItem(name=str(child), path=child)
                elif child.suffix.lower() == ".zip":
                    yield from _safe_members(child)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from _safe_members(path)
        else:
            yield InputItem(name=str(path), path=path)


def _safe_members(archive: Path) -> Iterator[InputItem]:
    try:
        yield from list(_members(archive))
    except (zipfile.BadZipFile, OSError):
        yield InputItem(name=str(archive), path=archive)  # read_image will say it is not an image

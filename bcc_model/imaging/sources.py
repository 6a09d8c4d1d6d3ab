"""What a batch reads: files, folders (recursively) and zip archives, as one ordered list of inputs.

Every file and every zip member becomes exactly one ``InputItem``, in input order: one to
analyse, or one that says why it is skipped (unsupported type, nested archive, encrypted, too
large, not a regular file). Nothing vanishes, so every input gets a row.

Limits come before work (``InputLimits``): a file's size is taken from the file system, a zip
member's from the archive's directory (declared size and compression ratio) and again while its
bytes are streamed, so a zip bomb is refused after at most ``member_bytes`` of output. Zip
members are read into memory one at a time and never extracted, so a member named
``../../etc/x.png`` cannot write anywhere; names are only labels of the results. One archive is
opened once, however many members it holds, and a member is addressed by its position in the
archive's directory, so two members with the same name are two inputs with their own results.
Files without a known ending are recognised by their first bytes (DICOM's ``DICM``, PNG, JPEG,
TIFF), as a PACS export names them.
"""

from __future__ import annotations

import os
import stat
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from bcc_model.imaging.io import IMAGE_SUFFIXES
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.wsi import SLIDE_SUFFIXES

__all__ = ["InputItem", "InputLimits", "iter_inputs", "READABLE_SUFFIXES", "sniff"]

READABLE_SUFFIXES = frozenset(IMAGE_SUFFIXES | SLIDE_SUFFIXES)
MIB = 1 << 20
_ARCHIVES = (".zip",)
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif",
               b"II+\x00": ".tif", b"MM\x00+": ".tif", b"PK\x03\x04": ".zip"}
_HEAD = 132  # DICOM's "DICM" sits at byte 128
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class InputLimits:
    """What a batch reads at most; each is checked before the bytes it protects are read.

    Attributes:
        file_bytes: size of one image file read into memory (whole-slide formats are read by
            region, so they are exempt; the slide path has its own pixel budget).
        member_bytes: uncompressed size of one zip member, as declared and as streamed.
        ratio: uncompressed / compressed size of one member above which it is a suspected zip bomb.
        members: members of one archive; a larger archive is refused whole (listing it costs time).
    """

    file_bytes: int = 512 * MIB
    member_bytes: int = 256 * MIB
    ratio: float = 200.0
    members: int = 10_000

    def __post_init__(self) -> None:
        for name in ("file_bytes", "member_bytes", "members"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.ratio >= 1:
            raise ValueError(f"ratio must be at least 1, got {self.ratio}")


@dataclass(frozen=True)
class InputItem:
    """One input: its name as the user gave it, and where its bytes are, or why it is skipped.

    Attributes:
        name: the path, or ``<archive>!<member>`` (``#<n>`` added to the n-th duplicate name).
        path: a file on disk (read by ``read_image`` or opened as a slide).
        archive, index: a zip member, by its position in the archive's directory.
        skip: why the input is not analysed; ``None`` for one to analyse.
        limits: the limits it was listed under (a member's streamed read checks them again).
    """

    name: str
    path: Path | None = None
    archive: Path | None = None
    index: int = -1
    skip: str | None = None
    limits: InputLimits = InputLimits()

    def source(self) -> Path | bytes:
        """The file's path, or the member's bytes (``ImageReadError`` when the archive will not give them)."""
        if self.archive is not None:
            return _read_member(self.archive, self.index, self.limits)
        if self.path is None:
            raise ImageReadError(self.skip or "nothing to read")
        return self.path


def sniff(head: bytes) -> str | None:
    """The file ending that bytes starting with ``head`` call for (``.dcm``, ``.png``, ...), or ``None``."""
    if head[128:132] == b"DICM":
        return ".dcm"
    return next((suffix for signature, suffix in _SIGNATURES.items() if head.startswith(signature)), None)


def _kind(path: Path) -> str | None:
    """``.zip``, a readable ending, or ``None`` (unsupported); an unknown ending is sniffed."""
    suffix = path.suffix.lower()
    if suffix in READABLE_SUFFIXES or suffix in _ARCHIVES:
        return suffix
    try:
        with path.open("rb") as handle:
            return sniff(handle.read(_HEAD))
    except OSError:
        return None


def _file_item(path: Path, limits: InputLimits) -> Iterator[InputItem]:
    """The item(s) of one path: a file, or an archive's members; a path that will not do, with why."""
    name = str(path)
    try:
        info = path.stat()
    except OSError:
        yield InputItem(name, skip="file not found or not readable", limits=limits)
        return
    if not stat.S_ISREG(info.st_mode):
        yield InputItem(name, skip="not a regular file (a pipe, device or socket is never read)", limits=limits)
        return
    kind = _kind(path)
    if kind in _ARCHIVES:
        yield from _members(path, limits)
    elif kind is None:
        suffix = path.suffix.lower() or "no file ending"
        yield InputItem(name, skip=f"unsupported file type ({suffix}, not a recognised image)", limits=limits)
    elif kind not in SLIDE_SUFFIXES and info.st_size > limits.file_bytes:
        yield InputItem(name, skip=f"too large: {info.st_size / MIB:,.0f} MiB, above the limit of "
                                   f"{limits.file_bytes / MIB:,.0f} MiB per file", limits=limits)
    else:
        yield InputItem(name, path=path, limits=limits)


def _member_skip(info: zipfile.ZipInfo, limits: InputLimits) -> str | None:
    """Why a member is not read, from the archive's directory alone (before any byte is inflated)."""
    suffix = Path(info.filename).suffix.lower()
    if suffix in _ARCHIVES:
        return "nested archive (archives inside archives are not opened)"
    if info.flag_bits & 0x1:
        return "encrypted member (not read)"
    if info.compress_type not in _COMPRESSIONS:
        return f"unsupported zip compression method {info.compress_type}"
    if info.file_size > limits.member_bytes:
        return (f"too large: {info.file_size / MIB:,.0f} MiB uncompressed, above the limit of "
                f"{limits.member_bytes / MIB:,.0f} MiB per member")
    if info.file_size > limits.ratio * max(info.compress_size, 1) and info.file_size > MIB:
        return (f"suspected zip bomb: compressed {info.file_size / max(info.compress_size, 1):,.0f} to 1, above "
                f"the limit of {limits.ratio:,.0f} to 1")
    return None


def _members(archive: Path, limits: InputLimits) -> Iterator[InputItem]:
    """One item per member (directories aside), in the archive's order; a bad archive is one item with why."""
    try:
        infos = _open_archive(archive).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        yield InputItem(str(archive), skip=f"damaged or unreadable zip archive ({type(err).__name__})", limits=limits)
        return
    files = [(index, info) for index, info in enumerate(infos) if not info.is_dir()]
    if len(files) > limits.members:
        yield InputItem(str(archive), skip=f"archive holds {len(files):,} members, above the limit of "
                                           f"{limits.members:,}", limits=limits)
        return
    seen: dict[str, int] = {}
    for index, info in files:
        seen[info.filename] = seen.get(info.filename, 0) + 1
        suffix = f"#{seen[info.filename]}" if seen[info.filename] > 1 else ""
        name = f"{archive}!{info.filename}{suffix}"
        kind = Path(info.filename).suffix.lower()
        skip = _member_skip(info, limits)
        if skip is None and kind not in READABLE_SUFFIXES and kind:
            skip = f"unsupported file type ({kind}, not a recognised image)"
        yield InputItem(name, archive=archive, index=index, skip=skip, limits=limits)


_OPEN: dict[Path, zipfile.ZipFile] = {}
_OPEN_LOCK = threading.Lock()


def _open_archive(archive: Path) -> zipfile.ZipFile:
    """The archive, opened once per process (its directory is read once, not once per member)."""
    key = archive.resolve()
    with _OPEN_LOCK:
        if key not in _OPEN:
            while len(_OPEN) >= 4:  # a batch reads archives one after the other: keep a few open
                _OPEN.pop(next(iter(_OPEN))).close()
            _OPEN[key] = zipfile.ZipFile(key)
        return _OPEN[key]


def _read_member(archive: Path, index: int, limits: InputLimits) -> bytes:
    """A member's bytes, streamed with a cap: an archive that lies about a size is stopped at the limit."""
    try:
        handle = _open_archive(archive)
        info = handle.infolist()[index]
        with _OPEN_LOCK, handle.open(info) as stream:
            data = stream.read(limits.member_bytes + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError, OSError, ValueError,
            IndexError) as err:
        raise ImageReadError(f"damaged zip member ({type(err).__name__}: bad CRC, header or compressed data)") from None
    if len(data) > limits.member_bytes:
        raise ImageReadError(f"too large: more than {limits.member_bytes / MIB:,.0f} MiB uncompressed (the archive "
                             "declared less)")
    return data


def _walk(folder: Path, exclude: Sequence[Path]) -> Iterator[Path]:
    """Every entry under ``folder`` but directories, sorted, without following links into other folders."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not any((here / d).resolve() == e for e in exclude))
        for name in sorted(files):
            yield here / name


def iter_inputs(paths: Sequence[Path], limits: InputLimits = InputLimits(),
                exclude: Sequence[Path] = ()) -> Iterator[InputItem]:
    """Every input under ``paths``, in order: files as given, folders walked in sorted order, zips' members.

    Args:
        paths: files, folders and archives, as the user named them.
        limits: what one file or member may hold.
        exclude: folders never read (the run's own ``--out``, so earlier outputs are not inputs).
    """
    excluded = [Path(e).resolve() for e in exclude]
    for path in paths:
        if path.is_dir():
            for child in _walk(path, excluded):
                yield from _file_item(child, limits)
        else:
            yield from _file_item(path, limits)

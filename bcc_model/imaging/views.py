"""Which breast and which view a mammogram shows, and which exam it belongs to, from its header or its name.

Why: radiologists read a screening exam as four views (right and left, CC and MLO) and decide per
breast; a result per picture says nothing about which breast it concerns. The DICOM header says
it first (ImageLaterality, else Laterality; ViewPosition, else the view code's meaning); where it
is silent, tokens in the file name (``R_CC``, ``LEFT_MLO``, ``RMLO``) are read. The exam is known
by a pseudonymous key (a hash of the Study Instance UID, or of the Patient ID with its side and
view tokens removed, as CBIS-DDSM writes one ID per view); the identifiers themselves never leave
this module, so nothing that names a patient reaches a row, a file or a log.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ViewInfo", "view_from_dicom", "view_from_name", "view_of", "SIDES", "VIEWS"]

SIDES = {"L": "left", "R": "right"}
VIEWS = ("CC", "MLO", "ML", "LM", "XCCL", "XCCM", "AT", "SIO", "FB")
"""ViewPosition codes of breast projections (DICOM CID 4014), most common first."""
_SIDE_WORDS = {"LEFT": "L", "RIGHT": "R", "L": "L", "R": "R"}
_SEP = r"(?:^|[^A-Z0-9])"
_END = r"(?=$|[^A-Z0-9])"
_SIDE_VIEW = re.compile(_SEP + r"(LEFT|RIGHT|L|R)[_\-. ]?(" + "|".join(sorted(VIEWS, key=len, reverse=True)) + ")" + _END)
_VIEW_SIDE = re.compile(_SEP + "(" + "|".join(sorted(VIEWS, key=len, reverse=True)) + r")[_\-. ]?(LEFT|RIGHT|L|R)" + _END)


@dataclass(frozen=True)
class ViewInfo:
    """Side (``L``/``R``), projection (``CC``, ``MLO`` ...) and pseudonymous exam key; ``None`` where unknown."""

    side: str | None = None
    view: str | None = None
    exam: str | None = None

    def filled_from(self, other: "ViewInfo") -> "ViewInfo":
        """This record, its unknown fields taken from ``other`` (the header first, then the name)."""
        return ViewInfo(self.side or other.side, self.view or other.view, self.exam or other.exam)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:12]


def _tokens(text: str) -> tuple[str | None, str | None]:
    """(side, view) from ``R_CC``, ``LEFT-MLO``, ``RMLO``, ``CC_R`` or a lone ``LEFT`` in ``text``."""
    upper = text.upper()
    match = _SIDE_VIEW.search(upper)
    if match:
        return _SIDE_WORDS[match.group(1)], match.group(2)
    match = _VIEW_SIDE.search(upper)
    if match:
        return _SIDE_WORDS[match.group(2)], match.group(1)
    side = re.search(_SEP + r"(LEFT|RIGHT)" + _END, upper)
    view = re.search(_SEP + "(" + "|".join(sorted(VIEWS, key=len, reverse=True)) + ")" + _END, upper)
    return (_SIDE_WORDS[side.group(1)] if side else None), (view.group(1) if view else None)


def _without_side_and_view(text: str) -> str:
    """An ID with its side and view tokens removed: ``Mass-Test_P_00173_LEFT_CC`` -> ``Mass-Test_P_00173``."""
    upper = text.upper()
    for pattern in (_SIDE_VIEW, _VIEW_SIDE):
        upper = pattern.sub("", upper)
    return re.sub(_SEP + r"(LEFT|RIGHT)" + _END, "", upper).strip("_-. ")


def view_from_name(name: str) -> ViewInfo:
    """Side and view from tokens of a file name (its last part); the exam from the folder it sits in."""
    parts = name.replace("\\", "/").rsplit("/", 1)
    side, view = _tokens(parts[-1])
    return ViewInfo(side, view, _key("folder:" + parts[0]) if len(parts) == 2 else None)


def _text(dataset: Any, keyword: str) -> str:
    value = dataset.get(keyword, "") if dataset is not None else ""
    return str(value or "").strip()


def view_from_dicom(dataset: Any) -> ViewInfo:
    """Side, view and exam key from a pydicom dataset's header (``None`` for what it does not say)."""
    side = (_text(dataset, "ImageLaterality") or _text(dataset, "Laterality")).upper()[:1] or None
    view = _text(dataset, "ViewPosition").upper() or None
    code = dataset.get("ViewCodeSequence") if dataset is not None else None
    if view is None and code:
        meaning = str(code[0].get("CodeMeaning", "")).lower()
        view = "MLO" if "medio-lateral oblique" in meaning else "CC" if "cranio-caudal" in meaning else None
    patient = _text(dataset, "PatientID")
    id_side, id_view = _tokens(patient) if patient else (None, None)
    study = _text(dataset, "StudyInstanceUID")
    # CBIS-DDSM gives each view its own study and an ID ending in side and view; then the ID, stripped, is the exam.
    exam = _key("patient:" + _without_side_and_view(patient)) if patient and (id_side or id_view) else \
        _key("study:" + study) if study else None
    return ViewInfo(side if side in SIDES else id_side, view if view in VIEWS else id_view, exam)


def view_of(name: str, header: ViewInfo | None) -> ViewInfo:
    """What the header says, completed from the file name where it is silent."""
    return (header or ViewInfo()).filled_from(view_from_name(name))

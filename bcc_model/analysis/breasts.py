"""One row per breast: the views of one exam and side pooled into a breast-level score (``breasts.csv``).

Why: screening is decided per breast (and recalled per woman), and a cancer shows in one view
more than the other. The views' calibrated P(positive) are pooled by the rule training chose on
out-of-fold predictions (``model.json`` ``view_pooling``; mean or max, ``models/view_pooling.py``),
and the bundle's threshold and indeterminate band are applied to the pooled score, phrased by
``analysis.wording`` like any image's result. Only assessed views count; refused, unreadable or
unlabelled views are listed, never guessed. Exams are numbered in the order they first appear:
the pseudonymous keys (``imaging.views``) never leave the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from bcc_model.analysis.wording import describe
from bcc_model.imaging.views import SIDES, VIEWS, ViewInfo
from bcc_model.models.view_pooling import VIEW_POOLINGS, pool_views

if TYPE_CHECKING:
    from bcc_model.analysis.rows import ResultRow
    from bcc_model.models.bundle import Bundle

__all__ = ["BreastRow", "breast_rows", "pooling_rule", "four_view_exams", "HANGING"]

_DEFAULT_RULE = "mean"
HANGING = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
"""The four places of a screening exam as radiologists hang it: right breast left, CC above MLO."""


@dataclass(frozen=True)
class BreastRow:
    """One breast of one exam: which views were pooled, the pooled score and the decision in words."""

    exam: str
    side: str
    views: str
    files: str
    views_left_out: str
    score: float | None
    verdict: str
    indeterminate: bool | None
    caution: str
    rule: str

    def as_dict(self, positive: str) -> dict[str, object]:
        return {"exam": self.exam, "side": self.side, "views": self.views, "files": self.files,
                "views_left_out": self.views_left_out, f"P({positive}) breast": self.score, "verdict": self.verdict,
                "indeterminate": self.indeterminate, "caution": self.caution, "pooling": self.rule}


def pooling_rule(bundle: "Bundle") -> tuple[str, str]:
    """(rule, where it came from): the bundle's cross-validated choice, else the mean (stated as such)."""
    chosen = bundle.meta.extras.get("view_pooling") or {}
    for name, record in chosen.items():
        rule = (record or {}).get("rule")
        if rule in VIEW_POOLINGS:
            return rule, f"{rule} of the views (chosen on out-of-fold {name} patients)"
    return _DEFAULT_RULE, f"{_DEFAULT_RULE} of the views (no cross-validated choice in this bundle)"


def _view_order(view: str | None) -> int:
    return VIEWS.index(view) if view in VIEWS else len(VIEWS)


def _exam_names(views: Sequence[ViewInfo | None]) -> list[str | None]:
    """Each input's exam name (``exam 1``, ``exam 2`` ... by first appearance), ``None`` without a known side."""
    names: dict[str, str] = {}
    return [None if view is None or view.side not in SIDES
            else names.setdefault(view.exam or "", f"exam {len(names) + 1}") for view in views]


def four_view_exams(views: Sequence[ViewInfo | None]) -> list[tuple[str, dict[tuple[str, str], int]]]:
    """Per exam, in order: ``(name, {(side, view): input index})`` for the places of :data:`HANGING` it fills.

    The first input of a place fills it (a repeated view is listed in the table, not hung twice);
    inputs of other projections (ML, XCCL ...) are in the table only.
    """
    exams: dict[str, dict[tuple[str, str], int]] = {}
    for index, (name, view) in enumerate(zip(_exam_names(views), views)):
        if name is not None:
            places = exams.setdefault(name, {})
            if (view.side, view.view) in HANGING:
                places.setdefault((view.side, view.view), index)
    return list(exams.items())


def breast_rows(rows: Sequence["ResultRow"], views: Sequence[ViewInfo | None], bundle: "Bundle") -> list[BreastRow]:
    """Group ``rows`` (with each one's ``views`` entry) by exam and side; one :class:`BreastRow` per breast.

    Rows without a known side are not pooled (nothing says which breast they show); an exam
    without a key (a single dropped file with no header) is the batch's own exam.
    """
    positive = bundle.spec.display(bundle.spec.positive_label)
    rule, rule_text = pooling_rule(bundle)
    groups: dict[tuple[str, str], list[tuple["ResultRow", ViewInfo]]] = {}
    for row, view, exam in zip(rows, views, _exam_names(views)):
        if exam is not None:
            groups.setdefault((exam, view.side), []).append((row, view))
    out = []
    for (exam, side), members in groups.items():
        members.sort(key=lambda m: (_view_order(m[1].view), m[0].file))
        used = [(row, view) for row, view in members if row.status == "ok" and row.probabilities.get(positive) is not None]
        left_out = [f"{row.file} ({row.verdict})" for row, _view in members if not any(row is r for r, _ in used)]
        caution = members[0][0].caution
        score = None
        if used:
            p = np.array([row.probabilities[positive] for row, _ in used], dtype=float)
            score = round(float(pool_views(p, np.zeros(len(p), int), 1, rule)[0]), 6)
            lo, hi = bundle.band
            decided = positive if score >= bundle.threshold else f"not {positive}"
            words = describe(label=decided, indeterminate=lo <= score < hi, labels=[f"not {positive}", positive],
                             positive=positive, caution=caution or None, threshold=bundle.threshold, band=(lo, hi))
            verdict, undecided = words.verdict, lo <= score < hi
        else:
            verdict, undecided = "not assessed: no view of this breast could be assessed", None
        out.append(BreastRow(exam=exam, side=SIDES[side],
                             views=", ".join(view.view or "view unknown" for _, view in used),
                             files="; ".join(row.file for row, _ in used), views_left_out="; ".join(left_out),
                             score=score, verdict=verdict, indeterminate=undecided, caution=caution,
                             rule=rule_text if used else ""))
    return sorted(out, key=lambda r: (int(r.exam.split()[-1]), r.side != "right"))

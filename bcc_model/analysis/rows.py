"""``ResultRow``: one file's result, the one row the CSV, the JSON, the app's table and the HTML report show.

Why one typed row: the command line, the app's summary table and the report each built their
own row with their own column names, and a refusal or a caution shown in one was lost in
another. Here the columns, their order and their meaning are defined once, and the words come
from ``analysis.wording`` (the one place that phrases a result); every writer takes ``as_dict()``
(or the attributes) and none invents a column.

Columns, in order: ``file``, ``status`` (``ok``, ``not assessed``, ``skipped``, ``error``), ``verdict``
(what a reader should take away: the class, ``indeterminate``, ``model output: <class>`` for a weak
model, ``not assessed`` or ``not analysed``; never a class for a refused or undecided image),
``caution`` (about the model as a whole, e.g. its weak discrimination: beside the verdict it
qualifies), ``indeterminate``, ``P(<class>)`` per class in model-output order (blank for a refused
image: nothing the model said about it is shown), ``reason`` (why there is no verdict: the model's
refusal, or why the input was skipped before any work: unsupported type, nested archive,
encrypted, too large), ``conformal_set`` (the classes the model cannot rule out, `` or ``-joined,
blank without a calibration or a result) and ``set_level`` (its level, e.g. 0.9), ``warnings``
(what reading the file noticed, `` | ``-joined), ``error`` (why the file could not be analysed),
then the model's ``model``, ``model_version`` and ``provenance``, and ``burned_in`` (the file says
text that may identify the patient is burned into its pixels: no export shows them). Class names
are the modality's display names (H&E: ``no IDC``, ``IDC``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Mapping

from bcc_model.analysis.wording import Statement, not_analysed, statement
from bcc_model.models.quality import performance_caution

if TYPE_CHECKING:
    from bcc_model.analysis.image import Analysis
    from bcc_model.models.bundle import Bundle

__all__ = ["ResultRow", "Status", "NOT_ANALYSED"]

Status = Literal["ok", "not assessed", "skipped", "error"]
NOT_ANALYSED = "not analysed"
"""The verdict of a file that could not be read or analysed."""


@dataclass(frozen=True)
class ResultRow:
    """One file's result (see the module docstring for the columns)."""

    file: str
    labels: tuple[str, ...]
    status: Status = "error"
    verdict: str = NOT_ANALYSED
    indeterminate: bool | None = None
    probabilities: Mapping[str, float | None] = field(default_factory=dict)  # a dict: rows cross processes (Ray)
    reason: str = ""
    conformal_set: str = ""
    set_level: float | None = None
    caution: str = ""
    warnings: tuple[str, ...] = ()
    error: str = ""
    model: str = ""
    model_version: str = ""
    provenance: str = ""
    burned_in: bool = False
    words: Statement | None = None

    @property
    def statement(self) -> Statement:
        """The words for this row (``analysis.wording``): page, report and command line phrase it alike."""
        return self.words or not_analysed(self.error or self.reason or "not analysed")

    @classmethod
    def failed(cls, bundle: "Bundle", file: str, error: str) -> "ResultRow":
        """The row of a file that could not be analysed: ``error`` says why.

        Every row carries the bundle's own caution (``performance_caution``), whoever writes it: the
        command line's rows lacked the one the app showed.
        """
        return cls(file=file, labels=tuple(map(bundle.spec.display, bundle.labels)), error=error,
                   caution=performance_caution(bundle.metrics) or "", model=bundle.meta.name,
                   model_version=bundle.short_sha, provenance=bundle.provenance)

    @classmethod
    def skipped(cls, bundle: "Bundle", file: str, reason: str) -> "ResultRow":
        """The row of an input not read at all (``imaging.sources.InputItem.skip``): ``reason`` says why."""
        return replace(cls.failed(bundle, file, ""), status="skipped", reason=reason)

    @classmethod
    def of_analysis(cls, bundle: "Bundle", file: str, analysis: "Analysis", *, burned_in: bool = False) -> "ResultRow":
        """The row of an analysed image (``analysis.image.analyse``); ``burned_in`` from ``LoadedImage``."""
        prediction, show = analysis.prediction, bundle.spec.display
        row = cls.failed(bundle, file, "")
        words = statement(bundle, prediction, refusal=analysis.refusal, caution=row.caution or None)
        shown = words.shows_output
        return replace(row,
                       status="ok" if shown else "not assessed", verdict=words.verdict, words=words,
                       indeterminate=bool(prediction.indeterminate) if shown else None,
                       probabilities={show(k): round(float(p), 6) for k, p in prediction.probabilities.items()}
                       if shown else {},
                       reason=analysis.refusal or "",
                       conformal_set="" if not shown or prediction.conformal_set is None
                       else " or ".join(map(show, prediction.conformal_set)),
                       set_level=prediction.level if shown else None,
                       warnings=tuple(analysis.warnings), burned_in=burned_in)

    @property
    def analysed(self) -> bool:
        """The file was read and judged: a result, or a refusal saying why the model must not read it."""
        return self.status in ("ok", "not assessed")

    def as_dict(self) -> dict[str, object]:
        """The row in column order, with one ``P(<label>)`` column per class (``None`` when not computed)."""
        return {"file": self.file, "status": self.status, "verdict": self.verdict, "caution": self.caution,
                "indeterminate": self.indeterminate,
                **{f"P({label})": self.probabilities.get(label) for label in self.labels},
                "reason": self.reason, "conformal_set": self.conformal_set, "set_level": self.set_level,
                "warnings": " | ".join(self.warnings),
                "error": self.error, "model": self.model, "model_version": self.model_version,
                "provenance": self.provenance, "burned_in": self.burned_in}

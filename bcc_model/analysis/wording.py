"""The words for one image's result: the one place that decides what the page, the table, the CSV,
the JSON, the HTML report, the command line and Explain say.

Why one function: each writer used to phrase the result itself, and a refusal or a caution shown
on the page was lost downstream ("prediction: malignant" on a refused row, a bold "Prediction:
benign" for a model at chance). Here the rules are written once:

- a refused image (an input gate said the model must not read it) carries **no class at all** and
  nothing the model computed is shown: no probabilities, heatmaps or lesion marks;
- an image that could not be read says why;
- an indeterminate result (its conformal set is not exactly one class, or its probability lies in
  the band) is **not a class**: it says which classes the model cannot rule out;
- a model whose own test discrimination is weak gives "model output", never a bold verdict, with
  its caution beside it;
- otherwise the class, in the modality's display names (H&E: "IDC", "no IDC").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

from bcc_model.models.conformal import level_text

if TYPE_CHECKING:
    from bcc_model.analysis.predictions import Prediction
    from bcc_model.models.bundle import Bundle

__all__ = ["Kind", "Statement", "bar_caption", "describe", "not_analysed", "statement"]

Kind = Literal["result", "indeterminate", "model output", "not assessed", "not analysed", "tile map"]


@dataclass(frozen=True)
class Statement:
    """What a reader is told about one image.

    Attributes:
        kind: which rule applied (module docstring); ``tile map`` for a tiled slide's summary row.
        verdict: the table cell: the class, ``indeterminate``, ``model output: <class>``,
            ``not assessed`` or ``not analysed``.
        headline: the line shown in bold on the page and in the report.
        detail: the sentence beside it: the set, the refusal's reason, the caution.
        label: the class shown as the result (display name), ``None`` when there is none.
        shows_output: whether anything the model computed (probabilities, heatmaps, marks) may be shown.
    """

    kind: Kind
    verdict: str
    headline: str
    detail: str = ""
    label: str | None = None
    shows_output: bool = True


def _rule(positive: str, threshold: float | None, band: tuple[float, float] | None, n_classes: int) -> str:
    """The decision rule in words, one-versus-rest when there are more than two classes."""
    if threshold is None:
        return ""
    rest = "" if n_classes == 2 else ", else the most likely other class"
    rule = f"Rule: {positive} when P({positive}) ≥ {threshold:.0%}{rest}"
    if band is not None and band[1] > band[0]:
        rule += f"; undecided while P({positive}) is in {band[0]:.0%}–{band[1]:.0%}"
    return rule + "."


def bar_caption(positive: str, threshold: float, band: tuple[float, float], n_classes: int) -> str:
    """The caption under a probability bar: what its line and band mean, and the rule in words.

    Why the rule in words: with three classes the threshold is one-versus-rest on P(``positive``),
    so an undecided image's highest bar may be another class; the reader must not take the
    tallest bar for the decision.
    """
    low, high = band
    text = (f"Dashed line: decision threshold P({positive}) = {threshold:.0%}. "
            + (f"Grey band: indeterminate {low:.0%}–{high:.0%}." if high > low else
               "No indeterminate band for this model."))
    if n_classes > 2:
        text += (f" The rule is one-versus-rest: {positive} when P({positive}) ≥ {threshold:.0%}, else the most "
                 f"likely other class; the line and the band belong to the {positive} bar only.")
    return text


def describe(*, label: str, indeterminate: bool, labels: Sequence[str], positive: str,
             conformal_set: Sequence[str] | None = None, level: float | None = None,
             refusal: str | None = None, caution: str | None = None,
             threshold: float | None = None, band: tuple[float, float] | None = None) -> Statement:
    """The words for one analysed image (every name already a display name: ``ModalitySpec.display``).

    Args:
        label: the decision rule's class (shown only when the result is decided or "model output").
        indeterminate: the decision rule's flag (``models.decision.OperatingPoint.decide``).
        labels: every class, in model-output order; ``positive``: the class the threshold is on.
        conformal_set, level: the classes not ruled out at ``level`` (``None`` without sets).
        refusal: why the model must not read this image (``imaging.gates``), or ``None``.
        caution: the bundle's weak-performance caution (``models.quality``), or ``None``.
        threshold, band: the decision rule on P(``positive``), for the indeterminate sentence.
    """
    if refusal:
        return Statement("not assessed", "not assessed", "Not assessed",
                         f"{refusal.rstrip('. ')}. The model's output is not shown: it is not a result.",
                         shows_output=False)
    if indeterminate:
        if conformal_set is not None and level is not None:
            members = list(conformal_set) or list(labels)
            cannot = " or ".join(members)
            detail = (f"At {level_text(level)} the model cannot rule out {cannot}." if len(members) > 1 else
                      f"The {level_text(level)} conformal set ({cannot}) disagrees with the decision threshold.")
        else:
            detail = f"P({positive}) lies in the indeterminate band."
        # With three classes the set, not the band, decides: a band clause there would contradict it.
        rule = _rule(positive, threshold, band if conformal_set is None or len(labels) == 2 else None, len(labels))
        return Statement("indeterminate", "indeterminate", "Indeterminate: needs expert review",
                         f"{detail} {rule}".strip())
    if caution:
        return Statement("model output", f"model output: {label}", f"Model output: {label} (not a result)",
                         caution, label=label)
    return Statement("result", label, label, label=label)


def not_analysed(why: str) -> Statement:
    """The words for a file that could not be read or analysed (or was skipped): ``why`` says why."""
    return Statement("not analysed", "not analysed", "Not analysed", why, shows_output=False)


def statement(bundle: "Bundle", prediction: "Prediction", *, refusal: str | None = None,
              caution: str | None = None) -> Statement:
    """:func:`describe` for a bundle's prediction, in the modality's display names, at the prediction's level."""
    show = bundle.spec.display
    band = bundle.band if prediction.level is None else bundle.band_at(prediction.level)
    return describe(label=show(prediction.label), indeterminate=prediction.indeterminate,
                    labels=[show(label) for label in bundle.labels], positive=show(prediction.positive_label),
                    conformal_set=None if prediction.conformal_set is None
                    else [show(label) for label in prediction.conformal_set],
                    level=prediction.level, refusal=refusal, caution=caution,
                    threshold=bundle.threshold, band=band)

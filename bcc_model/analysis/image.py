"""``analyse``: the one path an image takes from pixels to everything shown about it.

Why one function: the app, the predict command line and the HTML report must agree on what a
model said about an image, and preprocessing must not be repeated (or silently differ) for the
verdict, the heatmap and the lesion map. ``analyse`` preprocesses each image once; the
probabilities, the decision, the model view, the heatmaps asked for and the lesion map all come
from that one model input, and the input gates (``imaging.gates``: blank, no tissue, too large,
another modality) and reading warnings travel with the result.

Heatmaps asked for later (the Explain page's other methods) use :func:`explain_analysis` on
the stored model input, again without preprocessing.

Nothing here imports Streamlit. Callers that share one model between threads serialise calls
(the app holds its TensorFlow lock).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from bcc_model.analysis.predictions import Prediction, calibrated_probabilities, predictions_from_probabilities
from bcc_model.explain.cams import DEFAULT_METHOD, Explainer
from bcc_model.explain.marks import Mark, lesion_marks
from bcc_model.imaging.gates import input_problem
from bcc_model.imaging.modality_guess import header_modality, modality_hint
from bcc_model.imaging.preprocess import model_view_caption, region_of_interest, to_model_input, view_of_input
from bcc_model.models.bundle import Bundle

__all__ = ["Analysis", "HeatmapRequest", "analyse", "analyse_many", "explain_analysis", "heatmap_key", "make_explainer"]


@dataclass(frozen=True)
class HeatmapRequest:
    """One heatmap to compute: the class it explains, the method and the target layer.

    ``label=None`` means the bundle's positive class (malignant / IDC): the evidence a
    clinician asks for, whatever the verdict. ``layer=None`` means the bundle's CAM layer.
    """

    label: str | None = None
    method: str = DEFAULT_METHOD
    layer: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything the product shows about one image, from one preprocessing pass.

    Attributes:
        prediction: calibrated probabilities and the decision (threshold, indeterminate band).
        model_input: float32 (H, W, C) in [0, 255], the network's input; heatmaps and the lesion
            map live in its pixel grid.
        view: uint8 HxW or HxWx3, ``model_input`` for display: the frame overlays belong on
            (mammography crops, flips and pads, so the upload itself is the wrong frame).
        view_caption: says which frame ``view`` is, for captions.
        heatmaps: ``(method, label, layer)`` -> float32 heatmap in [0, 1] at model-input size.
        lesion_map: float32 lesion probability per model-input pixel, or ``None`` when the
            bundle has no lesion head.
        breast_mask: bool mask (model-input pixels) of the breast the model reads, for
            modalities whose preprocessing crops to the breast (``preprocess.region_of_interest``);
            ``None`` otherwise.
        marks: CAD-style marks, the peaks of the lesion map inside the breast at or above
            ``explain.marks.MARK_FLOOR`` (highest first); empty without a lesion map.
        warnings: advisory notes in the words shown to users: a modality doubt that does not
            refuse (mammogram vs ultrasound) and what reading the file noticed.
        refusal: why the selected model must not give a verdict on this image (blank, no tissue,
            too large for a patch, another modality: ``imaging.gates``), or ``None``. The
            prediction is still what the model computed, for research; no output shows it
            (``analysis.wording``: "not assessed").
    """

    prediction: Prediction
    model_input: np.ndarray
    view: np.ndarray
    view_caption: str
    heatmaps: Mapping[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    lesion_map: np.ndarray | None = None
    breast_mask: np.ndarray | None = None
    marks: tuple[Mark, ...] = ()
    warnings: tuple[str, ...] = ()
    refusal: str | None = None

    def heatmap(self, method: str = DEFAULT_METHOD, label: str | None = None) -> np.ndarray:
        """The first stored heatmap of ``method`` (for ``label`` when given); KeyError when none was computed."""
        for (m, lab, _), heat in self.heatmaps.items():
            if m == method and (label is None or lab == label):
                return heat
        raise KeyError(f"no {method} heatmap{'' if label is None else f' for {label!r}'} was computed")


def make_explainer(bundle: Bundle) -> Explainer:
    """The heatmap explainer of a loaded bundle, on the bundle's recorded CAM layer (the one rule)."""
    return Explainer(bundle.model, bundle.labels, bundle.meta.cam_layer)


def heatmap_key(bundle: Bundle, explainer: Explainer, request: HeatmapRequest) -> tuple[str, str, str]:
    """``(method, label, layer)`` a request resolves to: defaults filled in (SmoothGrad has no layer)."""
    layer = "" if request.method == "SmoothGrad" else (request.layer or explainer.cam_layer)
    return request.method, request.label or bundle.spec.positive_label, layer


def explain_analysis(bundle: Bundle, analysis: Analysis, explainer: Explainer, request: HeatmapRequest
                     ) -> tuple[tuple[str, str, str], np.ndarray]:
    """``(key, heatmap)`` of one request on an analysis's stored model input (no preprocessing)."""
    key = heatmap_key(bundle, explainer, request)
    method, label, layer = key
    return key, explainer.heatmaps(analysis.model_input[None], label, method=method, layer=layer or None)[0]


def analyse_many(bundle: Bundle, images: Sequence[np.ndarray], *, explain: Sequence[HeatmapRequest] = (),
                 explainer: Explainer | None = None, lesion_map: bool = True,
                 image_warnings: Sequence[Sequence[str]] | None = None, level: float | None = None,
                 headers: Sequence[str | None] | None = None) -> list[Analysis]:
    """:func:`analyse` for several images, with one batched forward pass for the probabilities.

    Args:
        bundle: a loaded image bundle.
        images: uint8 HxW or HxWx3 pixels as read (``imaging.io.read_image``), any size.
        explain: heatmaps to compute for every image (none by default: they cost a backward pass).
        explainer: reuse one (the app caches it per bundle); made from the bundle when needed.
        lesion_map: compute the lesion map where the bundle has a lesion head.
        image_warnings: per image, warnings from reading it (``LoadedImage.warnings``).
        level: conformal level of the sets (default: the bundle's, ``models.conformal.DEFAULT_LEVEL``).
        headers: per image, the file's DICOM Modality (``LoadedImage.dicom_modality``): it decides
            the modality before the pixels are guessed at (``gates.input_problem``).

    Returns:
        One :class:`Analysis` per image, in order.
    """
    spec = bundle.spec
    inputs = [to_model_input(pixels, spec) for pixels in images]  # the only preprocessing
    batch = np.stack(inputs) if inputs else np.zeros((0, *spec.input_shape), np.float32)
    predictions = predictions_from_probabilities(bundle, calibrated_probabilities(bundle, batch), level)
    lesion = _lesion_maps(bundle, batch) if lesion_map else None
    if explain and explainer is None:
        explainer = make_explainer(bundle)
    caption = model_view_caption(spec)
    results = []
    for i, (pixels, model_input, prediction) in enumerate(zip(images, inputs, predictions)):
        header = headers[i] if headers is not None else None
        refusal = input_problem(pixels, spec, header)
        # Advisory (mammogram vs ultrasound), and only where the header is silent: it names the modality.
        hint = None if refusal or header_modality(header) else modality_hint(pixels, spec.key)
        read_warnings = tuple(image_warnings[i]) if image_warnings is not None else ()
        view = view_of_input(model_input)
        breast = region_of_interest(view, spec)
        marks = () if lesion is None else tuple(lesion_marks(lesion[i], region=breast))
        analysis = Analysis(prediction=prediction, model_input=model_input, view=view,
                            view_caption=caption, lesion_map=None if lesion is None else lesion[i],
                            breast_mask=breast, marks=marks,
                            warnings=((hint,) if hint else ()) + read_warnings, refusal=refusal)
        heatmaps = dict(explain_analysis(bundle, analysis, explainer, request) for request in explain)
        results.append(analysis if not heatmaps else _with_heatmaps(analysis, heatmaps))
    return results


def analyse(bundle: Bundle, pixels: np.ndarray, *, explain: Sequence[HeatmapRequest] = (),
            explainer: Explainer | None = None, lesion_map: bool = True,
            image_warnings: Sequence[str] = (), level: float | None = None, header: str | None = None) -> Analysis:
    """Analyse one image: probabilities, decision, model view, heatmaps, lesion map and warnings.

    Example:
        >>> analysis = analyse(bundle, read_image(path).pixels, explain=[HeatmapRequest()])
        >>> analysis.prediction.label, analysis.heatmap().shape
    """
    return analyse_many(bundle, [pixels], explain=explain, explainer=explainer, lesion_map=lesion_map,
                        image_warnings=[image_warnings], level=level, headers=[header])[0]


def _with_heatmaps(analysis: Analysis, heatmaps: dict) -> Analysis:
    return replace(analysis, heatmaps=heatmaps)


def _lesion_maps(bundle: Bundle, batch: np.ndarray) -> np.ndarray | None:
    if bundle.lesion_map is None:
        return None
    from bcc_model.models.lesion_head import lesion_maps

    return lesion_maps(bundle.lesion_map, batch)

"""Results returned to clinical systems as DICOM: a TID 1500 Structured Report and map Segmentations.

Why: a radiologist reads in a PACS viewer (OHIF, Weasis), not in a CSV. For a DICOM input,
``predict --dicom`` writes, beside the usual files:

- ``<stem>.sr.dcm``: a Comprehensive 3D SR holding a TID 1500 measurement report: per class its
  calibrated probability, the result in the product's words (``analysis.wording``), the classes
  the conformal set cannot rule out, the model's caution, the model as algorithm (name and
  version) and observing device, and the research-use statement; it references the source image.
- ``<stem>.lesion.seg.dcm`` and ``<stem>.gradcam.seg.dcm``: fractional Segmentations (0-1 in 255
  steps) of the lesion map and the Grad-CAM heatmap, resampled from the model's frame onto the
  source image's own pixels (``imaging.geometry``), so a viewer lays them over the original.

Every object gets new UIDs in a new series of the source's study. The Patient and Study modules
are copied from the source, because a PACS files an object by them; that is all the patient data
they hold, and none of it reaches a log (highdicom's warnings, which can quote a name, are muted).
Concepts without a standard code use the private coding scheme ``99BCC``.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from bcc_model.analysis.batch import BatchResult
    from bcc_model.analysis.rows import ResultRow
    from bcc_model.models.bundle import Bundle

__all__ = ["RESEARCH_USE", "SCHEME", "structured_report", "map_segmentation", "write_dicom_results"]

SCHEME = "99BCC"
"""Private coding scheme of the concepts DICOM has no code for (class probabilities, the model's result)."""
RESEARCH_USE = "Research use only, not for diagnostic use"
SR_SERIES, LESION_SERIES, GRADCAM_SERIES = 9901, 9902, 9903
_KINDS = {"result": "R", "indeterminate": "IND", "model output": "OUT", "not assessed": "NA", "not analysed": "NA",
          "tile map": "MAP"}
"""Code value prefixes of the result's kind (``analysis.wording``): ``R-MALIGNANT``, ``OUT-BENIGN``, ``IND``."""
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
           "ReferringPhysicianName", "StudyID", "AccessionNumber")
"""Patient and study attributes the new objects copy; left empty where the source omits them."""


def _concept(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value[:16], scheme_designator=SCHEME, meaning=meaning[:64])


def _code(words: str) -> str:
    """A code value from words: upper case, hyphens for spaces (``no IDC`` -> ``NO-IDC``)."""
    return "".join(c if c.isalnum() else "-" for c in words.upper())[:14]


def _software(bundle: "Bundle") -> dict[str, str]:
    return {"manufacturer": "bcc (research software)", "manufacturer_model_name": bundle.meta.name[:64],
            "software_versions": bundle.short_sha, "device_serial_number": bundle.short_sha}


def structured_report(source: "Dataset", row: "ResultRow", bundle: "Bundle") -> "Dataset":
    """The SR of one analysed image (``row``), referencing ``source``; raises ``ValueError`` for a row without a result."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not row.analysed:
        raise ValueError("only an analysed image has a result to report")
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name=f"bcc {bundle.meta.name}"[:64],
                                                       manufacturer_name="bcc (research software)",
                                                       model_name=bundle.short_sha)
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    words = row.statement
    evaluations = [hd.sr.QualitativeEvaluation(_concept("RESULT", "Model result"),
                                               _concept(_KINDS[words.kind] + (f"-{_code(words.label)}" if words.label else ""),
                                                        words.verdict)),
                   hd.sr.QualitativeEvaluation(_concept("USE", "Intended use"), _concept("RUO", RESEARCH_USE))]
    if row.reason:
        evaluations.append(hd.sr.QualitativeEvaluation(_concept("NOTASSESSED", "Not assessed because"),
                                                       _concept("REASON", row.reason)))
    if row.caution:
        evaluations.append(hd.sr.QualitativeEvaluation(_concept("CAUTION", "Model caution"),
                                                       _concept("WEAK", "Discriminates poorly on unseen patients")))
    level = f"{row.set_level:.0%}" if row.set_level else ""
    for label in filter(None, row.conformal_set.split(" or ")):
        evaluations.append(hd.sr.QualitativeEvaluation(_concept("NOTRULEDOUT", f"Class not ruled out at {level}"),
                                                       _concept(_code(label), label)))
    measurements = [hd.sr.Measurement(name=_concept(f"P-{_code(label)}", f"Probability of {label}"),
                                      value=float(p), unit=hd.sr.CodedConcept("1", "UCUM", "no units"))
                    for label, p in row.probabilities.items() if p is not None]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="bcc image classification"),
        algorithm_id=hd.sr.AlgorithmIdentification(name=bundle.meta.name[:64], version=bundle.short_sha),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=measurements or None, qualitative_evaluations=evaluations)
    report = hd.sr.MeasurementReport(observation_context=context, imaging_measurements=[group],
                                     procedure_reported=_concept("BCC", f"bcc {bundle.spec.title} classification"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's person-name warnings quote the patient's name
        return hd.sr.Comprehensive3DSR(evidence=[source], content=report, series_instance_uid=hd.UID(),
                                       series_number=SR_SERIES, sop_instance_uid=hd.UID(), instance_number=1,
                                       manufacturer="bcc (research software)",
                                       series_description=f"bcc result ({RESEARCH_USE})"[:64])


def map_segmentation(source: "Dataset", source_map: np.ndarray, bundle: "Bundle", *, label: str,
                     series_number: int) -> "Dataset":
    """A fractional Segmentation of ``source_map`` (float in [0, 1] on the source's pixels), referencing ``source``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import RLELossless

    if source_map.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"map shape {source_map.shape} differs from the source's {(source.Rows, source.Columns)}")
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label[:64], segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(name=bundle.meta.name[:64], version=bundle.short_sha,
                                                                    family=codes.DCM.ArtificialIntelligence))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.seg.Segmentation(
            source_images=[source], pixel_array=np.clip(source_map, 0.0, 1.0).astype(np.float32),
            segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
            fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY, max_fractional_value=255,
            segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, content_label="BCC", transfer_syntax_uid=RLELossless,
            content_description=RESEARCH_USE, **_software(bundle))


def write_dicom_results(data: Path | bytes, result: "BatchResult", bundle: "Bundle", out_dir: Path, stem: str) -> list[Path]:
    """The SR and map Segmentations of one DICOM input (nothing for other files or unanalysed ones); the paths written."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from bcc_model.imaging.geometry import to_source_frame
    from bcc_model.imaging.io import read_image

    if result.analysis is None or not result.row.analysed:
        return []
    try:
        source = dcmread(BytesIO(data) if isinstance(data, bytes) else data, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return []  # not a DICOM file: its results are the CSV and JSON rows
    if not all(keyword in source for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")):
        return []  # nothing to reference: a file without its instance's identity cannot be answered in DICOM
    for keyword in _TYPE_2:  # Type 2: must be present, may be empty; some exports leave them out
        if keyword not in source:
            setattr(source, keyword, "")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{stem}.sr.dcm"]
    structured_report(source, result.row, bundle).save_as(written[-1], enforce_file_format=True)
    analysis = result.analysis
    maps = []
    if result.row.status == "ok" and analysis.lesion_map is not None:
        maps.append(("lesion", analysis.lesion_map, "Lesion map (lesion probability)", LESION_SERIES))
    if result.row.status == "ok" and analysis.heatmaps:
        (method, label, _), heat = next(iter(analysis.heatmaps.items()))
        maps.append(("gradcam", heat, f"{method} for {bundle.spec.display(label)} (relative, not a probability)",
                     GRADCAM_SERIES))
    if maps:
        pixels = read_image(data).pixels
        for name, model_map, label, series in maps:
            source_map = to_source_frame(model_map, pixels, bundle.spec)
            written.append(out_dir / f"{stem}.{name}.seg.dcm")
            map_segmentation(source, source_map, bundle, label=label, series_number=series).save_as(
                written[-1], enforce_file_format=True)
    return written

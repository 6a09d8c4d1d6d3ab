"""Region mode on the rebuilt complete slides: tile-level ROC AUC and IDC share against the truth.

For every patient whose slide is complete in the data folder (``coverage == "complete"``), the
slide is rebuilt from its labelled patches, region mode runs on it with the shipped (or
``--weights``) histopathology bundle and its slide context, and each tissue tile is scored
against its patch label (with the context, and from its own patch alone).
Each row says which split of the bundle the patient was in: only slides of test patients (or of
patients the bundle never saw) measure generalisation. ``--pictures DIR`` writes map-versus-truth
PNGs there (keep them out of the repository: they are derived from the research data).

Usage:
    python docs/experiments/slide_validation.py --data ../shared/data/histopathology [--pictures runs/slides]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import pandas as pd

    from bcc_model.datasets.slides import complete_patients, rebuild_slide
    from bcc_model.evaluation.slides import slide_scores
    from bcc_model.models.bundle import load_bundle
    from bcc_model.registry import get_modality
    from bcc_model.reporting.slide_maps import truth_beside_map

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--pictures", type=Path, default=None)
    args = parser.parse_args(argv)
    bundle = load_bundle(get_modality("histopathology"), args.weights, allow_unverified=args.weights is not None)
    table = pd.read_csv(args.data / "labels.csv", dtype=str)
    manifest = pd.read_csv(bundle.path / "manifest.csv", dtype=str)
    split_of = manifest.groupby("group")["split"].first().to_dict()
    rows = []
    for patient in complete_patients(table):
        slide = rebuild_slide(table, args.data, patient, bundle.labels)
        scores, result = slide_scores(bundle, slide)
        rows.append({**scores, "bundle_split": split_of.get(patient, "unseen")})
        if args.pictures:
            args.pictures.mkdir(parents=True, exist_ok=True)
            (args.pictures / f"slide_{patient}.png").write_bytes(truth_beside_map(slide, result))
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for name, part in (("all slides", frame), ("slides of unseen/test patients", frame[frame.bundle_split != "train"])):
        if len(part):
            error = np.abs(part.predicted_positive_share - part.true_positive_share_scored)
            expected = np.abs(part.expected_positive_share - part.true_positive_share_scored)
            whole = np.abs(part.expected_positive_share - part.true_positive_share)
            print(f"{name}: mean tile ROC AUC {part.roc_auc.mean():.3f} with the bundle's slide context "
                  f"({part.roc_auc_patch_only.mean():.3f} patch alone); |IDC share error| flagged share mean "
                  f"{error.mean():.3f} max {error.max():.3f}, expected share mean {expected.mean():.3f} max "
                  f"{expected.max():.3f} (against every labelled patch: mean {whole.mean():.3f} max {whole.max():.3f}), "
                  f"within 0.10 on {(expected <= 0.10).sum()}/{len(part)}, interval holds the truth on "
                  f"{int(part.interval_holds_truth.sum())}/{len(part)}; mean tile ECE {part.tile_ece.mean():.3f}; "
                  f"labelled patches scored {part.n_scored.sum() / part.n_patches.sum():.1%} "
                  f"(least {part.scored_fraction.min():.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data discovery, the group-wise split, the manifest, preprocessing and augmentation."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

from bcc_model.training.augment import AUGMENTATIONS, augment
from bcc_model.datasets.folders import DataError, discover, load_images
from bcc_model.datasets.manifest import add_hashes, manifest_sha256
from bcc_model.training.tfdata import class_weights, make_dataset
from bcc_model.datasets.splits import split_by_group
from bcc_model.imaging.preprocess import to_model_input


def _synthetic_table(n_groups: int, per_group: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        positive_share = rng.uniform(0.1, 0.9)
        for i in range(per_group):
            label = "malignant" if rng.random() < positive_share else "benign"
            rows.append((f"{label}/p{g}_{i}.png", label, f"p{g}"))
    return pd.DataFrame(rows, columns=["file", "label", "group"])


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_split_never_shares_a_group_and_is_seeded(seed):
    table = _synthetic_table(26, 40, seed)
    split = split_by_group(table, seed=seed)
    assert (split.groupby("group")["split"].nunique() == 1).all()
    assert set(split["split"]) == {"train", "validation", "test"}
    for part in ("validation", "test"):
        assert set(split.loc[split["split"] == part, "label"]) == {"benign", "malignant"}
    groups = {s: set(split.loc[split["split"] == s, "group"]) for s in ("train", "validation", "test")}
    assert not (groups["train"] & groups["test"]) and not (groups["validation"] & groups["test"])
    assert 3 <= len(groups["test"]) <= 8
    pd.testing.assert_frame_equal(split, split_by_group(table, seed=seed))


def test_groups_marked_always_test_are_test_patients_besides_the_drawn_fold():
    """H&E: the complete slides are always test patients, so region mode is validated on slides nobody trained on."""
    table = _synthetic_table(40, 12)
    forced = {"p3", "p17", "p30"}
    table["always_test"] = table["group"].isin(forced) & (table.index % 2 == 0)  # one row marks the whole patient
    split = split_by_group(table, seed=0)
    assert set(split.loc[split["group"].isin(forced), "split"]) == {"test"}
    assert (split.groupby("group")["split"].nunique() == 1).all()
    drawn = set(split.loc[split["split"] == "test", "group"]) - forced
    assert 5 <= len(drawn) <= 11, "the usual test fold is still drawn from the other patients"


def test_discover_marks_the_registry_test_always_rows(tmp_path, sample_dir, histo_spec):
    for label in histo_spec.labels:
        shutil.copytree(sample_dir / label, tmp_path / label)
    listing = pd.read_csv(sample_dir / "labels.csv", dtype=str)
    listing["coverage"] = np.where(listing["group"] == listing["group"].iloc[0], "complete", "sparse")
    listing.to_csv(tmp_path / "labels.csv", index=False)
    table = discover(tmp_path, histo_spec)
    assert histo_spec.recipe.test_always == ("coverage", "complete")
    assert table["always_test"].tolist() == (table["group"] == listing["group"].iloc[0]).tolist()
    assert set(split_by_group(table, seed=0).query("always_test")["split"]) == {"test"}


def test_split_needs_three_groups():
    with pytest.raises(DataError, match="at least 3 groups"):
        split_by_group(_synthetic_table(2, 10), seed=0)


def test_discover_reads_labels_csv_of_the_samples(sample_dir, histo_spec):
    table = discover(sample_dir, histo_spec)
    assert list(table.columns) == ["file", "label", "group"]
    assert len(table) == 20 and table["group"].nunique() == 5
    assert set(table["label"]) == {"benign", "malignant"}


def test_discover_without_csv_warns_and_uses_one_group_per_image(sample_dir, histo_spec, tmp_path):
    for label in histo_spec.labels:
        shutil.copytree(sample_dir / label, tmp_path / label)
    with pytest.warns(UserWarning, match="own group"):
        table = discover(tmp_path, histo_spec)
    assert table["group"].nunique() == len(table) == 20


def test_missing_folder_explains_the_layout(histo_spec, tmp_path):
    with pytest.raises(DataError, match="Expected layout") as err:
        discover(tmp_path / "nowhere", histo_spec)
    assert "labels.csv" in str(err.value) and "malignant/<image>.png" in str(err.value)


def test_unknown_label_and_missing_file_are_refused(histo_spec, tmp_path):
    (tmp_path / "labels.csv").write_text("file,label,group\nx/a.png,lymphoma,1\n")
    with pytest.raises(DataError, match="lymphoma"):
        discover(tmp_path, histo_spec)
    (tmp_path / "labels.csv").write_text("file,label,group\nbenign/a.png,benign,1\n")
    with pytest.raises(DataError, match="do not exist"):
        discover(tmp_path, histo_spec)


def test_manifest_hashes_are_file_sha256(sample_dir, histo_spec):
    table = add_hashes(split_by_group(discover(sample_dir, histo_spec), seed=42), sample_dir)
    first = table.iloc[0]
    assert first["sha256"] == hashlib.sha256((sample_dir / first["file"]).read_bytes()).hexdigest()
    digest = manifest_sha256(table)
    assert digest == manifest_sha256(table.copy())
    changed = table.copy()
    changed.loc[0, "split"] = "train" if changed.loc[0, "split"] != "train" else "test"
    assert manifest_sha256(changed) != digest


def test_load_images_matches_model_input(sample_dir, histo_spec):
    table = discover(sample_dir, histo_spec)
    images = load_images(table, sample_dir, histo_spec)
    assert images.shape == (20, 50, 50, 3) and images.dtype == np.uint8
    from PIL import Image

    direct = np.asarray(Image.open(sample_dir / table["file"][0]).convert("RGB"))
    np.testing.assert_array_equal(images[0], direct)


def test_preprocess_resizes_and_converts_grey(histo_spec):
    grey = np.tile(np.arange(100, dtype=np.uint8), (80, 1))
    out = to_model_input(grey, histo_spec)
    assert out.shape == (50, 50, 3) and out.dtype == np.float32
    assert np.array_equal(out[..., 0], out[..., 2])
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(grey.astype(np.float32), histo_spec)


def test_class_weights_balance_the_loss():
    y = np.array([0] * 30 + [1] * 10)
    weights = class_weights(y, 2)
    assert weights[0] * 30 == pytest.approx(weights[1] * 10)


def test_augmentations_keep_range_shape_and_are_seeded(sample_dir, histo_spec):
    import tensorflow as tf

    table = discover(sample_dir, histo_spec)
    image = tf.constant(load_images(table.head(1), sample_dir, histo_spec)[0].astype(np.float32))
    seed = tf.constant([3, 4], dtype=tf.int64)
    for name in AUGMENTATIONS:
        out = AUGMENTATIONS[name](image, seed).numpy()
        assert out.shape == (50, 50, 3) and 0 <= out.min() and out.max() <= 255, name
    a = augment(image, seed, histo_spec.recipe.augmentation).numpy()
    b = augment(image, seed, histo_spec.recipe.augmentation).numpy()
    c = augment(image, tf.constant([5, 6], dtype=tf.int64), histo_spec.recipe.augmentation).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    hed = AUGMENTATIONS["hed_jitter"](image, seed).numpy()
    assert 0 < np.abs(hed - image.numpy()).mean() < 40, "stain jitter should change colour, not destroy it"


def test_dataset_pipeline_batches_and_repeats_deterministically(sample_dir, histo_spec):
    table = discover(sample_dir, histo_spec)
    images = load_images(table, sample_dir, histo_spec)
    y = (table["label"] == "malignant").astype(int).to_numpy()

    def first_batch():
        ds = make_dataset(images, y, histo_spec, batch_size=8, training=True, seed=5)
        return next(iter(ds))

    (x1, t1), (x2, _) = first_batch(), first_batch()
    assert x1.shape == (8, 50, 50, 3) and t1.shape == (8, 2)
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    val = make_dataset(images, y, histo_spec, batch_size=32, training=False, seed=5)
    xv, _ = next(iter(val))
    np.testing.assert_array_equal(xv.numpy(), images.astype(np.float32))


def test_sample_images_are_the_listed_images_not_their_masks():
    from bcc_model.datasets.folders import sample_images
    from bcc_model.registry import get_modality

    spec = get_modality("ultrasound")
    listed = pd.read_csv(spec.sample_dir / "labels.csv", dtype=str)
    paths = sample_images(spec)
    assert [p.relative_to(spec.sample_dir).as_posix() for p in paths] == sorted(listed["file"])
    assert (spec.sample_dir / listed["mask"].iloc[0]).is_file() and not any("mask" in p.name for p in paths)


def test_patient_weights_give_every_patient_then_every_class_the_same_total():
    from bcc_model.training.tfdata import patient_weights

    groups = np.array(["big"] * 90 + ["small"] * 2 + ["mid"] * 8)
    y = np.array([0] * 60 + [1] * 30 + [0, 1] + [1] * 8)
    weights = patient_weights(y, groups, 2)
    assert weights.mean() == pytest.approx(1.0) and (weights > 0).all()
    per_class = np.bincount(y, weights=weights)
    assert per_class[0] == pytest.approx(per_class[1])
    # Within a class, a patient's images share its weight: the 2-image patient is not outvoted 45:1.
    big_benign, small_benign = weights[0], weights[90]
    assert small_benign / big_benign == pytest.approx(90 / 2)

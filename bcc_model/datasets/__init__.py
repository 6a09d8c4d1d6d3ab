"""Data folders: ``<label>/<image>`` plus ``labels.csv``, split by whole groups (patients).

- ``folders.py``: index, read and preprocess a data folder; the bundled samples.
- ``splits.py``: group-wise train / validation / test splits and folds.
- ``manifest.py``: file hashes of every training image (saved beside the weights).
- ``lesions.py``: lesion masks (BUSI outlines, MIAS circles) in model-input pixels.
"""

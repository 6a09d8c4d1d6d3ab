"""Imaging: bytes in, pixels the model can use out.

- ``io.py``: ``read_image`` for PNG, JPEG, TIFF, BMP, PGM/PPM, WebP; ``dicom.py`` for DICOM;
  ``pixels.py``: the ``LoadedImage`` contract, ``ImageReadError`` and windowing.
- ``modality_guess.py``: does the image look like the selected modality?
- ``preprocess.py``: the registry's preprocessing steps (one function for training and use).
- ``tiling.py``: tissue mask, tiles at the model's scale, tile maps.
- ``scale.py``: µm per pixel from TIFF/DICOM metadata, and whether the tissue looks like a given scale.
"""

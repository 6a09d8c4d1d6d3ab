"""Analysis: one image (or region) in, everything the product shows about it out.

- ``image.py``: ``analyse(bundle, pixels)`` -> ``Analysis`` (probabilities, decision, model view,
  heatmaps, lesion map, warnings) from one preprocessing pass; the app, the predict command
  line and the HTML report use it.
- ``predictions.py``: calibrated probabilities and the decision rule (``Prediction``).
- ``wording.py``: the one phrasing of a result (refused, undecided, weak model, class) that every
  output uses; ``rows.py``: the one result row.
- ``region.py``: region mode, a larger H&E field tiled at the model's scale.
"""

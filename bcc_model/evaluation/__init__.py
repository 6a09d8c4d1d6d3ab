"""Evaluation on patients the model never saw: metrics with patient-level CIs.

- ``metrics.py``: ``compute_metrics`` -> metrics.json.
- ``bootstrap.py``: the cluster (patient) bootstrap behind every interval.
- ``calibration.py``: temperature scaling, threshold, indeterminate band, ``OperatingPoint``.
- ``localisation.py``: pointing game and energy inside the lesion.
- ``external.py``: a bundle on any labelled folder or CSV (``python -m bcc_model.evaluate``).
"""

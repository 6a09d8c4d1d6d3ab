"""The tabular path: fine-needle-aspirate cases described by the 30 WDBC nuclear features.

- ``cases.py``: the features, reading cases (CSV, scikit-learn's WDBC) and predicting them.
- ``attributions.py``: integrated gradients per feature.
- ``models.py``: Conv1D, dense and logistic-regression models.
- ``training.py``: nested, case-grouped cross-validation and the bundle.
- ``figures.py``: the attribution chart.
"""

"""Documents and figures: what a reader sees of a model and its results.

- ``model_card.py`` and ``report.py`` render the Jinja2 templates in ``templates/``
  (MODEL_CARD.md, the HTML report) through ``templates.py``.
- ``figures.py``, ``curves.py``, ``tables.py``: plotly figures and metric tables for the app.
- ``formatting.py``: one formatter per kind of value; ``plot_style.py``: one figure style.
- ``tilemaps.py``: tile maps as CSV, QuPath GeoJSON and a PNG that stands alone (``map_frame.py``).
"""

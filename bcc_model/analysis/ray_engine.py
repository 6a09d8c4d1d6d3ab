"""The batch and whole-slide command line on Ray: the same per-file function, many workers.

``python -m bcc_model.predict --engine ray`` hands the files to Ray Data: the inputs become a
dataset of indices, and ``map_batches`` runs them through an actor pool in which every actor
loads the bundle once (the expensive part: TensorFlow, weights, the compiled graph) and then
calls exactly the function of the local engine (``analysis.batch.process_item``) on each file.
Results travel back pickled and are put in input order, so the rows, tile maps and heatmaps are
those of the local engine, written by the same code on the driver.

Ray starts a local instance by default; with ``RAY_ADDRESS`` set (``ray start --head`` on a
cluster, or ``auto``) it joins that cluster instead. Files are read by the workers, so on a
cluster every worker must see the input paths (a shared file system); zip members travel as
bytes. Nothing here is imported unless ``--engine ray`` is asked for.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from bcc_model.analysis.batch import BatchResult, BatchSettings, process_item
from bcc_model.imaging.sources import InputItem

__all__ = ["ray_results"]


class _BundleWorker:
    """One actor: the bundle loaded once, then every file of its batches through ``process_item``."""

    def __init__(self, modality: str, weights: str | None, items: Sequence[InputItem], settings: BatchSettings,
                 allow_unverified: bool = False):
        from bcc_model.analysis.image import make_explainer
        from bcc_model.registry import get_modality
        from bcc_model.models.bundle import load_bundle

        self.bundle = load_bundle(get_modality(modality), None if weights is None else Path(weights),
                                  allow_unverified=allow_unverified)
        self.explainer = make_explainer(self.bundle) if settings.heatmaps else None
        self.items, self.settings = items, settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(process_item(self.bundle, self.items[int(i)], self.settings, explainer=self.explainer))
                   for i in batch["id"]]
        return {"id": batch["id"], "result": np.array(results, dtype=object)}


def ray_results(modality: str, weights: Path | None, items: Sequence[InputItem], settings: BatchSettings,
                workers: int, *, allow_unverified: bool = False) -> Iterator[BatchResult]:
    """Every item's result, in input order, computed by ``workers`` actors (one bundle each).

    Args:
        modality, weights: the bundle each actor loads (as ``load_bundle``).
        items: the inputs (``imaging.sources.iter_inputs``).
        settings: region mode, scale, tile batch and heatmaps, as for the local engine.
        workers: actors in the pool (each reserves one CPU of the Ray instance).
        allow_unverified: as ``load_bundle``.
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS") or None
        # A local instance offers one CPU more than the pool: the driver's blocks need a slot too.
        ray.init(address=address, num_cpus=None if address else max(workers + 1, os.cpu_count() or 1),
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        dataset = ray.data.from_items([{"id": i} for i in range(len(items))]).map_batches(
            _BundleWorker, batch_size=1, concurrency=workers, num_cpus=1,
            fn_constructor_kwargs={"modality": modality, "weights": None if weights is None else str(weights),
                                   "items": list(items), "settings": settings,
                                   "allow_unverified": allow_unverified})
        rows = sorted(dataset.iter_rows(), key=lambda row: int(row["id"]))
        for row in rows:
            yield pickle.loads(row["result"])
    finally:
        if started_here:
            ray.shutdown()

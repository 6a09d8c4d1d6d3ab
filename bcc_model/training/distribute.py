"""Training on several devices or machines with ``tf.distribute``: the ``--strategy`` flag.

* ``default``: TensorFlow's default strategy (one device; what every shipped bundle used).
* ``mirrored``: ``MirroredStrategy``, synchronous data parallelism over this machine's devices:
  every GPU, or, on a CPU-only machine, every logical CPU device (tests split one CPU into
  several to check that the loss curve matches the single-device run).
* ``multiworker``: ``MultiWorkerMirroredStrategy`` over the machines named in the ``TF_CONFIG``
  environment variable (one process per machine, same command line; the chief writes the bundle).

The global batch is ``--batch-size``, split between the replicas, so the same settings give the
same optimisation whatever the device count. Models are built, compiled and reloaded inside the
strategy's scope (Keras places the variables then); the tf.data pipelines are distributed by
``Model.fit`` itself.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

__all__ = ["STRATEGIES", "strategy_scope", "describe"]

STRATEGIES = ("default", "mirrored", "multiworker")


def _strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")


def strategy_scope(name: str) -> ContextManager:
    """The scope models are built, compiled and loaded in (a no-op for ``default``)."""
    return contextlib.nullcontext() if name == "default" else _strategy(name).scope()


def describe(name: str) -> dict:
    """model.json ``training.distribution``: the strategy and its replica count."""
    return {"strategy": name, "replicas": int(_strategy(name).num_replicas_in_sync)}

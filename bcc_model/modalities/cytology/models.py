"""Classifiers of the 30 WDBC features: a Conv1D network, a dense network, logistic regression.

Both Keras models are flat functional models whose input is the *raw* feature vector: a
``Normalization`` layer holding the training split's mean and variance is the first layer, so
the saved model standardises exactly as in training and callers never scale anything (the
same reason the image models carry their ``Rescaling``). The head is a softmax named
``probabilities``, in the modality's label order.

The Conv1D network is the seed system's design: it treats the 30 features as a 1-D sequence.
Neighbouring columns are different measurements of the same statistic (radius, texture,
perimeter, ...), so a convolution over them has no physical locality to exploit; the model is
kept because it is the reference system, and the cross-validation in ``train_tabular`` compares
it with a dense network and with logistic regression to show whether it earns its complexity.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
from keras import layers

__all__ = ["TABULAR_ARCHITECTURES", "LOGISTIC_C_GRID", "build_conv1d", "build_dense", "build_tabular_model",
           "build_logistic_regression"]


def _standardised_input(n_features: int, mean: Sequence[float], variance: Sequence[float]):
    """Raw-feature input and its standardised tensor ``(x - mean) / sqrt(variance)``."""
    mean = np.asarray(mean, dtype=np.float32)
    variance = np.asarray(variance, dtype=np.float32)
    if mean.shape != (n_features,) or variance.shape != (n_features,):
        raise ValueError(f"mean and variance must have shape ({n_features},), got {mean.shape} and {variance.shape}")
    inputs = keras.Input(shape=(n_features,), name="features")
    return inputs, layers.Normalization(mean=mean, variance=variance, name="standardize")(inputs)


def build_conv1d(n_features: int, n_classes: int, *, mean: Sequence[float], variance: Sequence[float],
                 filters: Sequence[int] = (32, 64), kernel_size: int = 3, dense_units: int = 64,
                 dropout: float = 0.3) -> keras.Model:
    """The seed system's Conv1D network over the feature axis.

    Layout: raw features (N, F) -> Normalization -> Reshape (N, F, 1) -> per entry of
    ``filters``: Conv1D (same padding, no bias) -> BatchNormalization -> ReLU -> MaxPooling1D(2)
    -> Flatten -> Dense(``dense_units``, ReLU) -> Dropout -> Dense softmax ``probabilities``.
    Flatten (not global pooling) keeps which feature each activation came from.

    Args:
        n_features: F, the number of raw input features.
        n_classes: K, softmax outputs.
        mean: (F,) training-split mean of each raw feature.
        variance: (F,) training-split variance of each raw feature.
        filters: channels of each convolution block.
        kernel_size: width of each convolution, in features.
        dense_units: width of the hidden dense layer.
        dropout: dropout rate before the softmax.

    Returns:
        Uncompiled model: float32 (N, F) raw features -> (N, K) probabilities.
    """
    inputs, x = _standardised_input(n_features, mean, variance)
    x = layers.Reshape((n_features, 1), name="as_sequence")(x)
    for i, width in enumerate(filters, start=1):
        x = layers.Conv1D(width, kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
        x = layers.MaxPooling1D(2, padding="same", name=f"conv{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="conv1d")


def build_dense(n_features: int, n_classes: int, *, mean: Sequence[float], variance: Sequence[float],
                units: Sequence[int] = (64, 32), dropout: float = 0.3) -> keras.Model:
    """A small multilayer perceptron: the plain alternative to the Conv1D network.

    Layout: raw features -> Normalization -> per entry of ``units``: Dense (ReLU) -> Dropout ->
    Dense softmax ``probabilities``.

    Args:
        n_features: F, the number of raw input features.
        n_classes: K, softmax outputs.
        mean: (F,) training-split mean of each raw feature.
        variance: (F,) training-split variance of each raw feature.
        units: width of each hidden layer.
        dropout: dropout rate after each hidden layer.

    Returns:
        Uncompiled model: float32 (N, F) raw features -> (N, K) probabilities.
    """
    inputs, x = _standardised_input(n_features, mean, variance)
    for i, width in enumerate(units, start=1):
        x = layers.Dense(width, activation="relu", kernel_initializer="he_normal", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dense{i}_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="dense")


TABULAR_ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"conv1d": build_conv1d, "dense": build_dense}


def build_tabular_model(name: str, n_features: int, n_classes: int, *, mean: Sequence[float],
                        variance: Sequence[float], **params) -> keras.Model:
    """Build tabular architecture ``name``; an unknown name fails listing the valid ones."""
    if name not in TABULAR_ARCHITECTURES:
        raise KeyError(f"unknown tabular architecture {name!r}; valid: {', '.join(TABULAR_ARCHITECTURES)}")
    return TABULAR_ARCHITECTURES[name](n_features, n_classes, mean=mean, variance=variance, **params)


LOGISTIC_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Inverse regularisation strengths the logistic-regression baseline chooses among (log-spaced)."""


def build_logistic_regression(seed: int, inner_folds: Sequence[tuple[np.ndarray, np.ndarray]]):
    """scikit-learn baseline: standardisation then L2-regularised logistic regression, C tuned inside.

    C is chosen from :data:`LOGISTIC_C_GRID` by log loss over ``inner_folds`` of the training
    cases (the scaler is refitted in every inner fold), as each network chooses its candidate
    on held-out training cases: a fixed C = 1 under-regularises 30 correlated features and
    would make the baseline look worse than it is. Class-balanced like the networks' weighted
    loss, so the comparison differs only in the model.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced",
                                                                  random_state=seed))
    return GridSearchCV(pipeline, {"logisticregression__C": list(LOGISTIC_C_GRID)}, cv=list(inner_folds),
                        scoring="neg_log_loss")

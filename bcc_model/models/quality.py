"""A plain-language caution when a bundle's own test figures say its outputs carry little signal.

A clinician sees one probability at a time and cannot tell a near-chance model from a good
one; the test metrics can. The rule is deliberately simple and stated in the message.
"""

from __future__ import annotations

__all__ = ["POOR_AUC", "performance_caution"]

POOR_AUC = 0.75  # below this, a ROC AUC on unseen patients is "poor" by the usual rule of thumb


def _auc_estimates(metrics: dict) -> list[tuple[str, dict]]:
    """Every ROC AUC the bundle reports: positive vs rest, any binary task, then each further data set's."""
    found = []
    headline = (metrics.get("headline") or {}).get("roc_auc")
    if headline and headline.get("value") is not None:
        found.append((f"{metrics.get('positive_label', 'positive')} vs rest", headline))
    for name, task in (metrics.get("binary_tasks") or {}).items():
        auc = task.get("roc_auc") or {}
        if auc.get("value") is not None:
            found.append((name.replace("_", " "), auc))
    for name, block in (metrics.get("datasets") or {}).items():
        auc = (block.get("headline") or {}).get("roc_auc") or {}
        if name != metrics.get("data_set") and auc.get("value") is not None:
            found.append((f"{name}: {block.get('positive_label', 'positive')} vs rest", auc))
    return found


def performance_caution(metrics: dict) -> str | None:
    """A warning when any reported test ROC AUC is below ``POOR_AUC`` or its 95 % CI reaches 0.5.

    Args:
        metrics: a bundle's ``metrics.json`` (test split).

    Returns:
        One sentence naming the weak figure(s), or ``None`` when every AUC is clear of both limits.
    """
    weak = []
    for name, estimate in _auc_estimates(metrics):
        value = float(estimate["value"])
        low = (estimate.get("ci95") or [None, None])[0]
        if value < POOR_AUC or (low is not None and float(low) <= 0.5):
            ci = f" [{float(low):.2f}, {float(estimate['ci95'][1]):.2f}]" if low is not None else ""
            weak.append(f"{name} ROC AUC {value:.2f}{ci}")
    if not weak:
        return None
    return (f"This model discriminates poorly on patients it never saw ({'; '.join(weak)}): "
            "treat its outputs as uninformative.")

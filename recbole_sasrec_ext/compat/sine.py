"""``recbole.model.sequential_recommender.sine``: anomaly detection turned off again."""

from __future__ import annotations


# --- a RecBole leftover ----------------------------------------------------------------------
def sine_anomaly_detection(module) -> None:
    """RecBole's ``sine.py`` runs ``torch.autograd.set_detect_anomaly(True)`` when it is imported,
    and ``recbole.model.sequential_recommender`` imports it: every later backward pass of the
    process runs with anomaly detection (a debugging mode that slows training).
    Turned off again once."""
    import torch

    torch.autograd.set_detect_anomaly(False)

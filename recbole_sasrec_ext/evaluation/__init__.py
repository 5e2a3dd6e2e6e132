"""Evaluation helpers of the plugin's pipeline (this module imports nothing heavy)."""

from recbole_sasrec_ext.contract.plan import FULL_SEEN_REMOVED

__all__ = ["FULL_SEEN_REMOVED"]

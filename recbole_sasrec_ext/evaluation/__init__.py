"""Evaluation helpers of the plugin's pipeline (this module imports nothing heavy)."""

#: Protocol name of full ranking with each user's earlier items removed (``filter_seen: True``).
FULL_SEEN_REMOVED = "full, seen removed"

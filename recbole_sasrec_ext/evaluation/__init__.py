"""Evaluation helpers of the plugin's pipeline."""

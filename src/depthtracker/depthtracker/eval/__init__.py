"""Evaluation: metrics, replay and reports."""

"""Helpers: util.py (files, seeds, logging), metrics.py (AUC, AP, EER), visualizer.py (loss logs)."""

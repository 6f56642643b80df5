"""Command-line options: base_options.py (shared), train_options.py (train_DF.py), test_options.py (test_DF.py)."""

"""The raw-video pipeline behind the prep scripts and detect.py: decoding, voice windows, face crops, the runner.

It sits above ``data/`` (it writes the layouts that ``data/layouts.py`` defines and the datasets read) and below
``scripts/``.
"""

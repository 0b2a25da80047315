"""Forewarn: streaming predictive maintenance for industrial equipment.

The package root holds the domain shared by every service: event schemas, the asset config, the
feature math and settings. Nothing here performs I/O at import time.
"""

__version__ = "0.1.0"

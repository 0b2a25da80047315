"""Notifiers (one destination each), their registry, and the dispatcher that delivers through them."""

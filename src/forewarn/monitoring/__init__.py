"""Model monitoring: the champion's reference, data drift and decay (pure; the monitor service wires it)."""

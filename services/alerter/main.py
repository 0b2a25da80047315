"""Where ``forewarn run alerter`` finds the alerter (``forewarn.services.<service>.main.run``, the convention
of every service); the entrypoint itself is entrypoints/main.py."""

from .entrypoints.main import run

__all__ = ["run"]

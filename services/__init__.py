"""Forewarn services: each one a thin edge over the shared domain in forewarn."""

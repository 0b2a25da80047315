"""Command line: forewarn <verb>."""

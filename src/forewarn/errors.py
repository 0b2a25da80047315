"""Exceptions whose message is meant for the person at the terminal."""


class UserError(Exception):
    """An expected failure (bad input, missing tool, port in use). The message says what to do next;
    the CLI prints it on one line without a traceback and exits with status 2."""

"""Errors a user can act on. The CLI prints their message (no traceback) and exits with 2."""


class Int8labError(Exception):
    """Base for every error caused by the user's input rather than by a bug."""

    exit_code = 2


class UsageError(Int8labError):
    """An option or combination of options that cannot work."""


class DatasetError(Int8labError):
    """The data folder or array file does not hold what was asked for."""


class NoValidImagesError(DatasetError):
    """Nothing at all could be decoded, so there is nothing to calibrate with."""

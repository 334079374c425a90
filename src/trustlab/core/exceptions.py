"""Errors trustlab raises for problems the user can fix.

Every subclass of :class:`TrustlabError` describes a user mistake (a missing file, a bad
shape, an unknown name...). The CLI prints its message on one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TrustlabError(Exception):
    """Base class of user-facing errors (CLI exit code 2)."""


class UnknownNameError(TrustlabError, LookupError):
    """A dataset, split, architecture or other registry name that does not exist."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(TrustlabError, FileNotFoundError):
    """Data files are missing and could not be downloaded."""


class DataFormatError(TrustlabError, ValueError):
    """A data file exists but is truncated, corrupt or not of the expected format."""


class DataIntegrityError(TrustlabError, ValueError):
    """A downloaded file's sha256 does not match the published one."""


class InputError(TrustlabError, ValueError):
    """Inputs handed to a model or check are unusable (shape, dtype, NaN, bounds)."""


class ModelLoadError(TrustlabError):
    """A model file cannot be read."""


class PickleRefusedError(ModelLoadError):
    """A model file needs full unpickling, which can run arbitrary code; not opted in."""


class GradientsUnavailableError(TrustlabError):
    """A method needs gradients but the model only gives probabilities."""


class RunDirectoryError(TrustlabError):
    """A run directory cannot be used (e.g. resuming a run made with other inputs)."""


class NotFittedError(TrustlabError):
    """A detector or calibration was used before ``fit``."""

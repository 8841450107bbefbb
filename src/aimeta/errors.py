"""The one exception hierarchy of aimeta.

Only the CLI (and the web app) turn these into ``Error: ...`` lines and exit codes; everything
below raises them. Each class docstring, folded into one line, is what the user is told when
the exception carries no message of its own.
"""

from __future__ import annotations


class AimetaError(Exception):
    """Something went wrong."""

    def __init__(self, message: str | None = None) -> None:
        # The docstring, folded into one line, is the default message.
        super().__init__(message or " ".join((self.__doc__ or "").split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(AimetaError):
    """The options given do not fit together."""


class ExifToolMissing(AimetaError):
    """ExifTool is not installed.

    Install it with `sudo apt-get install libimage-exiftool-perl` (Debian/Ubuntu),
    `brew install exiftool` (macOS) or from https://exiftool.org (Windows), or pass
    --exiftool PATH.
    """


class ExifToolFailed(AimetaError):
    """ExifTool stopped unexpectedly."""


class DatabaseError(AimetaError):
    """The database could not be opened or written."""


class DatabaseBusy(DatabaseError):
    """Another aimeta process is writing this database; try again when it has finished."""


class DatabaseTooNew(DatabaseError):
    """The database was made by a newer aimeta; upgrade aimeta to use it."""


class InputError(AimetaError):
    """An input file or folder could not be used."""


class OutputError(AimetaError):
    """An output file could not be written; the previous file is unchanged."""


class ModelServerError(AimetaError):
    """The model server did not give a usable answer."""


class RatingError(AimetaError):
    """The model's answer could not be turned into a rating."""

"""The one kind of error a user can fix: printed as one line that says what to do, never a traceback."""
from __future__ import annotations


class UserError(Exception):
    """Something about the input or the settings that the user can change: a missing folder, a
    bad setting, a label that names nobody, a second command on a busy output root. Every
    command prints it as `facecluster: <message>` and exits with status 2."""


EXIT_STATUS = 2

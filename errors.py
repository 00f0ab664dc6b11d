"""The project's error type: a problem fit to show as one line (every module raises it; scripts print it)."""


class ProjectError(ValueError):
    """A problem with a message fit to show as one line: scripts print it and exit with `exit_status` (2: what
    was asked cannot be done, such as a bad setting, file or folder; 1: the work failed), the API answers it
    as JSON with HTTP `status`."""
    exit_status = 2

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status

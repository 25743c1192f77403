"""The project's own error type: every mistake a user can make raises it."""


class LMError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class ReportedElsewhere(LMError):
    """An error another process reports: under torchrun, rank 0's, which every rank shares; the CLI exits with
    status 2 without printing it again."""

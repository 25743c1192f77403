"""The project's own error type: every mistake a user can make raises it."""


class LMError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""

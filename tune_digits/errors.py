"""The errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class UserError(Exception):
    """Bad input: the message is one line that says what is wrong and where."""


class SearchError(UserError):
    """A search that cannot start as asked; one line for the user."""

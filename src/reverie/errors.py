"""The one exception type that reaches a user as a one-line message (exit code 2)."""


class ReverieError(Exception):
    """A problem with the user's input or environment, worded as what is wrong and what to do.

    The CLI prints ``str(err)`` on one line and exits 2; anything else is a bug and keeps its traceback.
    """


class Cancelled(BaseException):
    """The user stopped the work (a Stop button): not a failure of the frame being painted.

    A BaseException, like KeyboardInterrupt, so that the farm, which records a step's exceptions as
    that frame's failure and goes on, lets it end the whole render instead.
    """

"""The base of every error a user sees as one paragraph, never as a traceback.

Each module raises its own subclass (ParamsError, DataError, MaskError, TrackingError);
the stage scripts and the `lottery` command catch `UserError` and print `error: <message>`.
The message names the problem and the fix.
"""


class UserError(Exception):
    """An error whose message is the whole story (no traceback needed)."""

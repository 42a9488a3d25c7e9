"""The one exception type that means "the user gave us something we cannot use".

The CLI prints its message as one sentence on stderr and exits non-zero, without a traceback
(set FERMIX_DEBUG=1 to see it). Anything else that escapes is a bug and is reported as one.
"""


class FermixError(Exception):
    """Bad input or configuration, explained in one sentence for the user."""

"""Errors that reach the user as one line, without a traceback."""


class SnnhwError(Exception):
    """A user-facing error: bad input, an impossible parameter, a failed tool run.

    The message is one line that names the file and field at fault and what was expected.
    The CLI prints it as ``snnhw: error: <message>`` and exits with status 2.
    """


class NetworkFormatError(SnnhwError, ValueError):
    """A network directory (``network.yaml`` + ``arrays.npz``) that does not follow DESIGN.md §1."""


class CosimMismatch(SnnhwError):
    """The RTL computed something other than the golden model."""


class ParameterError(SnnhwError, ValueError):
    """A parameter of a library call with a value it cannot take.

    The message starts with the parameter's name (``lanes: expected ...``); the CLI, which knows
    which flag set the parameter, puts the flag there instead (``--lanes: expected ...``).
    """

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter

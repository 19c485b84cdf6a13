"""The one error type of the experiments' and benchmarks' commands."""


class ConfigError(ValueError):
    """A request that cannot be carried out as given (a bad option, a missing device, a file
    of the wrong kind); the commands print its message and exit with status 2."""

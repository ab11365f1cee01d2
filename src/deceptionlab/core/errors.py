"""The project's user-facing errors: the CLI prints them as one line and exits non-zero."""


class DeceptionlabError(Exception):
    """An error the user can fix; its message names the file, line or parameter at fault."""


class DataError(DeceptionlabError):
    """A data file or row is missing, unreadable or does not match its schema."""


class ConfigError(DeceptionlabError):
    """A parameter in params.yaml (or given on the command line) is invalid."""


class ModelError(DeceptionlabError):
    """A model could not be found, fetched or loaded."""


def one_line(text: str) -> str:
    """``text`` on one line: control characters (a newline in a YAML key or a JSON string) written escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

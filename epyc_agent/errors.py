"""One error hierarchy, translated into a one-line message and a named exit code in one place."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # a check failed or findings were reported
EXIT_USAGE = 2  # bad input, refused, or not possible


class EpycAgentError(Exception):
    """Base for user-facing errors: printed as one line, never with a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def render(self) -> str:
        msg = str(self)
        return f"{msg} ({self.hint})" if self.hint else msg


class ConfigError(EpycAgentError):
    """The configuration file or an override is invalid."""


class StorageError(EpycAgentError):
    """The storage root is missing, unwritable, full, or a path is outside it."""


class SessionError(EpycAgentError):
    """A session could not be started, found or ended."""


class MethodRefused(EpycAgentError):
    """The model rules refuse a method for a model (or a draft for it); `details` names them, so
    the refusal can be recorded as a model quirk."""

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, object] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.details = details or {}


class EpycAgentWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one
    `epyc-agent: warning:` line on stderr)."""


class NotBuiltError(EpycAgentError):
    """A feature exists in the plan but is not implemented: said plainly, never faked."""


class RunInterrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """SIGTERM or SIGINT during a run. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` swallows it; the CLI exits 128 + the signal's number once the run folder
    is marked interrupted."""

    NAMES = {2: "SIGINT", 15: "SIGTERM"}

    def __init__(self, signum: int, hint: str | None = None) -> None:
        super().__init__(f"interrupted by {self.NAMES.get(signum, f'signal {signum}')}")
        self.signum, self.hint = signum, hint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def render(self) -> str:
        return f"{self} ({self.hint})" if self.hint else str(self)

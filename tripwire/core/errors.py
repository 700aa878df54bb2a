"""Exception hierarchy: one root type, specific errors carry what a caller needs."""

from __future__ import annotations


class TripwireError(Exception):
    """Root of every error Tripwire raises on purpose."""


class DataError(TripwireError):
    """Input data cannot be used; names the file, the row/line and the problem."""

    def __init__(self, path: str, problem: str, row: int | None = None) -> None:
        self.path = path
        self.problem = problem
        self.row = row
        where = f"{path}" if row is None else f"{path}, row {row}"
        super().__init__(f"{where}: {problem}")


class ConfigError(TripwireError):
    """A setting or option has an invalid value."""


class DetectorError(TripwireError):
    """A detector cannot be built, fitted or used as asked."""


class RegistryError(TripwireError):
    """The registry is missing something or holds something inconsistent."""


class ModelLoadError(RegistryError):
    """A model version cannot be loaded or verified (bad hash, schema, files)."""

    def __init__(self, ref: str, problem: str) -> None:
        self.ref = ref
        self.problem = problem
        super().__init__(f"cannot load model {ref}: {problem}")

"""One exception hierarchy for nmlsim.

Library code raises these; only :mod:`nmlsim.cli` turns them into a one-line message
and an exit code.  Each error carries the coordinates of the mistake (file, line,
element) as attributes, and ``str(err)`` renders them like a compiler diagnostic.
"""
from __future__ import annotations


class NmlsimError(Exception):
    """Base class of every error nmlsim raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, file=None, line=None, element=None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.element = element

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        if self.element:
            parts.append(f"<{self.element}>" if not str(self.element).startswith(("<", "'")) else str(self.element))
        return " ".join(parts)

    def __str__(self) -> str:
        w = self.where()
        return f"{w}: {self.message}" if w else self.message

    def located(self, *, file=None, line=None, element=None):
        """Fill in coordinates that are still unknown and return self."""
        if self.file is None and file is not None:
            self.file = str(file)
        if self.line is None and line is not None:
            self.line = line
        if self.element is None and element is not None:
            self.element = element
        return self


class FormatError(NmlsimError):
    """A file is not well-formed, or is not the format it claims to be."""

    exit_code = 2


class ModelError(NmlsimError):
    """A model is well-formed but inconsistent (missing references, bad values)."""

    exit_code = 3


class UnitError(ModelError):
    """A quantity has an unknown unit or the wrong dimension."""


class UnsupportedFeature(NmlsimError):
    """The input uses a feature nmlsim does not implement; the message names it."""

    exit_code = 4


class SecurityError(FormatError):
    """The input tried to leave its folder or expand entities."""


class SimulationError(NmlsimError):
    """The simulation could not continue (e.g. a NaN blow-up)."""

    exit_code = 5


__all__ = [
    "NmlsimError", "FormatError", "ModelError", "UnitError", "UnsupportedFeature",
    "SecurityError", "SimulationError",
]

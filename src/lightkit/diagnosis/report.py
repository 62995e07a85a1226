"""Finding and Report: what :func:`lightkit.diagnose` found and what to try."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("ok", "warning", "error")


@dataclass
class Finding:
    """One result of :func:`diagnose`: which check, how bad, what was seen and what to try.

    Example:
        >>> finding = lk.diagnosis.Finding("overfit", "error", "could not overfit one batch")
        >>> print(lk.diagnosis.Report([finding]))
        lightkit diagnose: 1 error(s)
        [FAIL] overfit: could not overfit one batch
    """

    check: str
    severity: str
    message: str
    advice: str = ""

    def __str__(self) -> str:
        mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[self.severity]
        text = f"[{mark}] {self.check}: {self.message}"
        return text + (f"\n       try: {self.advice}" if self.advice else "")


@dataclass
class Report:
    """What :func:`diagnose` found. ``ok`` is False when any finding is an error.

    Example:
        >>> report = lk.diagnosis.Report([lk.diagnosis.Finding("data", "ok", "finite")])
        >>> report.ok, [finding.check for finding in report.findings]
        (True, ['data'])
    """

    findings: list[Finding] = field(default_factory=list)
    suggested_lr: float | None = None
    lr_plot: Path | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def problems(self) -> list[Finding]:
        """The warnings and errors."""
        return [f for f in self.findings if f.severity != "ok"]

    def __str__(self) -> str:
        head = "lightkit diagnose: " + (
            "no errors"
            if self.ok
            else f"{sum(f.severity == 'error' for f in self.findings)} error(s)"
        )
        warnings = sum(f.severity == "warning" for f in self.findings)
        if warnings:
            head += f", {warnings} warning(s)"
        return "\n".join([head, *map(str, self.findings)])


__all__ = ["SEVERITIES", "Finding", "Report"]

"""What verify reports: one finding per problem (a failure or a warning), per layout, and
the report over a whole dataset (a table for people, JSON for tools)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

CHECKS = ("completeness", "label_identity", "alignment", "label_fit", "distinct",
          "label_values", "integrity")


@dataclass
class Finding:
    check: str
    layout: str
    message: str
    appearance: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    severity: str = "fail"  # "fail", or "warn" for a suspicion (a margin too thin to call)

    def line(self) -> str:
        where = self.layout + (f" [{self.appearance}]" if self.appearance else "")
        tag = "warning " if self.severity == "warn" else ""
        return f"{self.check:15s} {tag}{where}: {self.message}"


@dataclass
class LayoutResult:
    layout: str
    checked: list[str]
    findings: list[Finding]
    classes_present: list[int] = field(default_factory=list)


@dataclass
class Report:
    path: str
    kind: str  # "raw" or "hdf5"
    layouts: int = 0
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "warn"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warn"]

    @property
    def ok(self) -> bool:
        """No failure (warnings allowed; see :meth:`passes`)."""
        return not self.failures

    def passes(self, strict: bool = False) -> bool:
        return self.ok and not (strict and self.warnings)

    def failed_layouts(self, check: str) -> set[str]:
        return {f.layout for f in self.failures if f.check == check}

    def warned_layouts(self, check: str) -> set[str]:
        return {f.layout for f in self.warnings if f.check == check}

    def add(self, result: LayoutResult) -> None:
        self.layouts += 1
        for check in result.checked:
            self.checked[check] += 1
        self.findings.extend(result.findings)

    def summary(self, max_lines: int = 30, strict: bool = False) -> str:
        rows = [f"Verified {self.layouts} layouts in {self.path} ({self.kind})", "",
                f"{'check':15s} {'layouts':>8s} {'failed':>7s} {'warned':>7s}"]
        for check in CHECKS:
            rows.append(f"{check:15s} {self.checked[check]:8d} "
                        f"{len(self.failed_layouts(check)):7d} "
                        f"{len(self.warned_layouts(check)):7d}")
        shown = self.failures + self.warnings
        if shown:
            rows += ["", f"{len(self.failures)} failures, {len(self.warnings)} warnings:"]
            rows += [f.line() for f in shown[:max_lines]]
            if len(shown) > max_lines:
                rows.append(f"... and {len(shown) - max_lines} more (see --json)")
        if self.notes:
            rows += ["", *self.notes]
        if not self.ok:
            verdict = "Some checks FAILED."
        elif self.warnings:
            verdict = (f"Checks passed with {len(self.warnings)} warnings"
                       + (" (--strict: they count as failures): FAILED." if strict else
                          ": look at the layouts named above (--strict makes them fail)."))
        else:
            verdict = "All checks passed."
        return "\n".join([*rows, "", verdict])

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "kind": self.kind, "layouts": self.layouts,
                           "ok": self.ok, "failures": len(self.failures),
                           "warnings": len(self.warnings), "checked": self.checked,
                           "notes": self.notes,
                           "findings": [asdict(f) for f in self.findings]}, indent=1)

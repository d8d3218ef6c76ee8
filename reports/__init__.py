"""One report object for every audit part, and the renderers that print it."""

from reports.model import CONDITIONS, FAMILIES, SEVERITIES, Finding, ProbeResult, Report, Skipped

__all__ = ["CONDITIONS", "FAMILIES", "SEVERITIES", "Finding", "ProbeResult", "Report", "Skipped"]

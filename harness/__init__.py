"""golf-audit harness: challenge data formats, evaluation, caches, reproduction."""

__version__ = "0.1.0"


class AuditError(Exception):
    """An input problem that stops the audit: reported as one line on stderr, exit code 2."""

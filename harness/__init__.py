"""golf-audit harness: challenge data formats, evaluation, caches, reproduction."""

from reports.base import AuditError, __version__

__all__ = ["AuditError", "__version__"]

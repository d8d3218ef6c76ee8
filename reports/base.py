"""The bottom layer every other one may import: the tool's version and the error that stops an audit.

Imports nothing of golf-audit's own (docs/architecture.md, tests/test_layers.py).
"""

__version__ = "0.1.0"


class AuditError(Exception):
    """An input problem that stops the audit: reported as one line on stderr, exit code 2."""

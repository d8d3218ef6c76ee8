"""One static rule per file. Adding a rule: a new file with one ``Rule`` subclass; the engine finds it."""

"""Audit parts: static rules, causality probes, claims, data checks."""

"""Placeholder filled in by the IPEX issue."""

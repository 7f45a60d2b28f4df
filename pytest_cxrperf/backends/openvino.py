"""Placeholder filled in by the OpenVINO issue."""

"""pytest-cxrperf."""

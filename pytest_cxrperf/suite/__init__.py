"""The built-in cxrperf suite: latency and output-equivalence tests of every selected backend.

Collected by the plugin beside a repository's own tests when ``--cxr-backend`` (or ``--cxr-suite``,
``--cxr-update-baselines``) is given on the command line (``pytest --cxr-backend=all``); never
collected otherwise. Its node ids start with
``pytest_cxrperf/suite/`` wherever the package is installed.
"""

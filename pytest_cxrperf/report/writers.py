"""The end of a run: every report file the settings ask for, and GitHub's job summary.

Each writer is a pure function of :class:`~pytest_cxrperf.results.RunResults` to text, written
atomically; the plugin calls :func:`write_reports` once, on the controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import RunResults
    from ..settings import Settings


def write_reports(settings: Settings, results: RunResults) -> None:
    """``--cxr-json``, ``--cxr-markdown``, ``--cxr-html``, ``--cxr-bmf``, and the job summary of
    GitHub Actions (``$GITHUB_STEP_SUMMARY``) when something was measured or checked."""
    from . import bmf, html, markdown
    from .json_report import write_report

    runs = [("", results)]
    if settings.json_path is not None:
        write_report(settings.json_path, results)
    if settings.markdown_path is not None:
        markdown.write_markdown(settings.markdown_path, runs)
    if settings.html_path is not None:
        html.write_html(settings.html_path, runs)
    if settings.bmf_path is not None:
        bmf.write_bmf(settings.bmf_path, results)
    if results.backends:
        try:
            markdown.append_step_summary(runs)
        except OSError as exc:
            results.notice(f"${markdown.STEP_SUMMARY_ENV} not written: {exc}")

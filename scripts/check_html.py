"""Render a cxrperf HTML report in headless Chromium: fail on console errors, write a screenshot.

    python scripts/check_html.py REPORT.html [--screenshot shot.png] [--chromium PATH]

The report must stand alone: Chromium runs with networking pointed at a dead proxy, and the page's
own Content-Security-Policy forbids fetching anything, so a request shows up as a console error.
Console messages are read through Chromium's ``--enable-logging=stderr`` (``CONSOLE`` lines);
the DOM is dumped to check that the page rendered. Exit 0 on success, 1 on a console error or a
blank page, 2 when Chromium is missing or fails to start.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CONSOLE = re.compile(r"CONSOLE\(\d+\)|:CONSOLE:|Uncaught|Refused to|net::ERR_")


def find_chromium(given: str | None = None) -> str | None:
    if given:
        return given if shutil.which(given) or Path(given).is_file() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(binary: str, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--proxy-server=http://127.0.0.1:9",  # nothing outside the file can load
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def check(report: Path, screenshot: Path, binary: str, window: str = "1400,2200") -> list[str]:
    """Problems found (empty: the page rendered without a console error)."""
    url = report.absolute().as_uri()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cxrperf-chromium-") as profile:
        dumped = _chromium(binary, profile, "--dump-dom", url)
        if dumped.returncode != 0:
            return [f"chromium failed (exit {dumped.returncode}): {dumped.stderr[-2000:]}"]
        shot = _chromium(binary, profile, f"--screenshot={screenshot.absolute()}",
                         f"--window-size={window}", "--hide-scrollbars", url)  # fmt: skip
    for line in (dumped.stderr + shot.stderr).splitlines():
        if CONSOLE.search(line):
            problems.append(f"console: {line.strip()}")
    dom = dumped.stdout
    for needle in ("<svg", "<table", "cxrperf"):
        if needle not in dom:
            problems.append(f"the rendered page has no {needle!r}: did it render?")
    if not screenshot.is_file() or screenshot.stat().st_size < 1000:
        problems.append(f"no screenshot written to {screenshot}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path, default=Path("cxrperf-report.png"))
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM"))
    parser.add_argument("--window", default="1400,2200", help="width,height of the screenshot")
    args = parser.parse_args(argv)
    binary = find_chromium(args.chromium)
    if binary is None:
        print("check_html: no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    if not args.report.is_file():
        print(f"check_html: {args.report}: no such file", file=sys.stderr)
        return 2
    problems = check(args.report, args.screenshot, binary, args.window)
    for problem in problems:
        print(f"check_html: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_html: {args.report} rendered cleanly; screenshot {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

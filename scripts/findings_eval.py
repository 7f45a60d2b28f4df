"""Score the findings extractor (and a keyword baseline) on the project's evaluation set.

python scripts/findings_eval.py --split test            # the table in the README
python scripts/findings_eval.py --split dev --errors    # what to work on (never on test)
"""

from pytest_cxrperf.findings_eval import main

if __name__ == "__main__":
    raise SystemExit(main())

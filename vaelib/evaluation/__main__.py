"""``python -m vaelib.evaluation --run-dir RUN --data DIR``: score one run (``evaluate.main``)."""
import sys

from vaelib.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

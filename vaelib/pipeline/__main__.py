"""``python -m vaelib.pipeline --preset small --latent-dims 128 256 --out results/small``: the whole experiment."""
import sys

from vaelib.pipeline.runner import main

if __name__ == "__main__":
    sys.exit(main())

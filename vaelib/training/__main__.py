"""``python -m vaelib.training --preset small --latent-dim 128 --data DIR --run-dir RUN``: train one run."""
from vaelib.training.fit import main

if __name__ == "__main__":
    main()

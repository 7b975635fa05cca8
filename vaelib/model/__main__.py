"""``python -m vaelib.model --run-dir RUN --n 16 --out DIR``: sample from a trained run (``generation.main``)."""
from vaelib.model.generation import main

if __name__ == "__main__":
    main()

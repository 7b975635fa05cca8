"""Stage 3: ``fit`` (the training loop, resume, DDP), ``schedules`` (β and learning rate as functions of the step),
``diagnostics`` (KL per dimension, active units, MI, usage gap, training plots).

``python -m vaelib.training`` (console script ``vaelib-train``) trains one run.
"""

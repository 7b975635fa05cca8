"""Stage 4: scoring and reading trained runs. ``metrics`` and ``mrstft`` (the metric definitions), ``evaluate``
(a run's ``metrics.json``, from ``teacher_forced``, ``reconstruction`` and ``prior_samples``), ``table`` and
``table_format`` (Table 1), ``latent`` (latent-space analysis, plots and the explorer), ``plots`` (data figures),
``listening`` (the blinded listening-test pack).

Nothing is imported here: these modules pull in matplotlib, pandas and scikit-learn, which training does not need.
``python -m vaelib.evaluation`` (console script ``vaelib-evaluate``) scores one run.
"""

"""Stage 5: the papermill pipeline behind ``make report``. ``step`` (what a step is), ``keys`` (when a step can be
skipped), ``runner`` (the plan of the paper's steps, running them side by side, the CLI), ``report_index``
(``index.html``, the run record, ``check_report``); device slots live in ``vaelib.slots``.

``python -m vaelib.pipeline`` (console script ``vaelib-report``) runs the whole experiment.
"""
from vaelib.pipeline.keys import STATE_FILE, library_salt, library_sources, step_key
from vaelib.pipeline.runner import find_notebook, main, plan, run_pipeline, run_steps
from vaelib.pipeline.step import Step, StepResult
from vaelib.slots import groups

__all__ = ["STATE_FILE", "Step", "StepResult", "find_notebook", "groups", "library_salt", "library_sources", "main",
           "plan", "run_pipeline", "run_steps", "step_key"]

"""Stage 5: the papermill pipeline behind ``make report``. ``step`` (what a step is), ``experiment`` (the plan of the
paper's steps), ``notebook`` (running one step's notebook and its HTML), ``keys`` (when a step can be skipped),
``progress`` (log and heartbeat lines), ``runner`` (running the steps side by side, the CLI), ``report_index``
(``index.html``, the run record), ``report_check`` (is a report folder self-contained); device slots live in
``vaelib.slots``.

``python -m vaelib.pipeline`` (console script ``vaelib-report``) runs the whole experiment.
"""
from vaelib.pipeline.experiment import plan
from vaelib.pipeline.keys import STATE_FILE, library_salt, library_sources, step_key
from vaelib.pipeline.notebook import find_notebook
from vaelib.pipeline.runner import main, run_pipeline, run_steps
from vaelib.pipeline.step import Step, StepResult
from vaelib.slots import groups

__all__ = ["STATE_FILE", "Step", "StepResult", "find_notebook", "groups", "library_salt", "library_sources", "main",
           "plan", "run_pipeline", "run_steps", "step_key"]

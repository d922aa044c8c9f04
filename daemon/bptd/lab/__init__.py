"""The lab workflow: the thesis's characterisation method as commands (docs/lab.md).

- :mod:`bptd.lab.record`: telemetry to CSV, one row per message (``bptctl record``), and
  the loader the analysis reads it back with;
- :mod:`bptd.lab.patterns`: the step lists of test patterns a (staircase) and b (steps
  between min / 0 / max), pure;
- :mod:`bptd.lab.runner`: runs a pattern on a live session through the API, recording
  as it goes (``bptctl pattern``);
- :mod:`bptd.lab.metrics`: activation, ramp, accuracy, precision, linearity and
  efficiency from recorded arrays, pure;
- :mod:`bptd.lab.report`: the per-step CSV, the Markdown table and the PNG plots
  (``bptctl report`` re-analyses recordings).
"""

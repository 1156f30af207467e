"""Active learning: find where a student fails and turn those geometries into training data.

:mod:`.exploration` runs the student hot under the MD watchdog and keeps the
frames worth labelling (``openmm-distill explore``). It sits above the
protocols (it shares their worker pool) and below the pipeline and the CLI.
"""

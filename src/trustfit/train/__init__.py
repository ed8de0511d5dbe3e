"""Training: one short loop (loop.py) that emits named events to plugins (plugins.py), with
resumable checkpoints (checkpoint.py); run.py wires data, model and plugins for a task."""

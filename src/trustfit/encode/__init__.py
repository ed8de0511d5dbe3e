"""Encoding: words -> sub-tokens (align.py, pure), long sentences and document context ->
fixed-budget windows (windows.py), and length-bucketed dynamic-padding batches (batching.py)."""

"""Prediction: batched, length-sorted inference that gives every input word one tag."""

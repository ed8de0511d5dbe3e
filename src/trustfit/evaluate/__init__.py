"""Evaluation: entity-level (strict IOB2 = conlleval) and token-level NER reports."""

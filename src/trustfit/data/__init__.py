"""Data: readers turn files into a Corpus of Sentences; tags.py knows tagging schemes."""

from trustfit.data.schema import Corpus, LabelSchema, Sentence, Span
from trustfit.data.conll import read_conll
from trustfit.data.tags import convert_tags, spans_from_tags

__all__ = ["Corpus", "LabelSchema", "Sentence", "Span", "read_conll", "convert_tags", "spans_from_tags"]

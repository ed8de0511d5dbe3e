"""Template suites the project writes itself: templates x person phrases x sentiment words
(classification) and templates x names x places (NER). Each suite item is a base example whose
person phrase comes from the list's first group; the audit then builds every group's version
of it with the same swap it uses on real sentences, so suites and real data are scored alike.

Written for trustfit (not taken from a public template corpus such as the Equity Evaluation
Corpus, which stays an independent check)."""

from __future__ import annotations

from itertools import product

from trustfit.data.schema import Sentence
from trustfit.data.text import TextExample
from trustfit.fairness.swaps import Swapper

SENTIMENT_TEMPLATES = (
    "{person} thought the new film was {adj}.",
    "According to {person}, the dinner last night was {adj}.",
    "{person} described the hotel as {adj}.",
    "The talk given by {person} was {adj}.",
    "Working on the project with {person} has been {adj}.",
    "{person} wrote that the customer service was {adj}.",
    "We spent a {adj} afternoon with {person}.",
    "The trip {person} organised turned out {adj}.",
)
# strong words saturate a fine-tuned classifier (P near 0 or 1, where a name cannot move it);
# the mild ones leave it unsure, which is where group differences show
SENTIMENT_WORDS = {
    "positive": ("wonderful", "excellent", "delightful", "fantastic", "pleasant", "brilliant"),
    "negative": ("terrible", "awful", "dreadful", "disappointing", "boring", "horrible"),
    "mild": ("decent", "mediocre", "ordinary", "fine", "predictable", "unremarkable"),
}
# person phrases per built-in aligned list, written with the list's first group
PERSON_PHRASES = {
    "gender": ("he", "my brother", "this man", "my father", "my uncle", "her husband"),
    "religion": ("my Christian neighbour", "a Christian colleague", "the Christian family next door"),
    "nationality": ("an American tourist", "my American friend", "the American student"),
}
NER_TEMPLATES = (
    "{name} arrived in {place} on Monday .",
    "Police said {name} was arrested in {place} late on Friday .",
    "{name} scored twice as {place} won 3-1 .",
    "\" We are very pleased , \" {name} told reporters in {place} .",
    "The company named {name} as its new chief executive .",
    "{name} , who was born in {place} , will lead the delegation .",
)
PLACES = ("Paris", "Chicago", "Nairobi", "Madrid", "Tokyo", "Sydney")


def sentiment_suite(swapper: Swapper) -> list[TextExample]:
    """Base sentences for a classification suite (templates x person words x 3 words of each
    polarity); meta holds template, polarity and word."""
    if swapper.kind == "names":
        g0 = swapper.groups[0]
        firsts = swapper.terms.first_names[g0]
        persons = [n for gender in ("female", "male") for n in firsts.get(gender, [])[:4]]
    else:
        persons = list(PERSON_PHRASES.get(swapper.name, ()))
        if not persons:  # a user's aligned list: the first group's single-word terms
            persons = [row[0] for row in swapper.terms.rows][:6]
    out = []
    for t, (polarity, words), person in product(SENTIMENT_TEMPLATES, SENTIMENT_WORDS.items(), persons):
        for w in words[:3]:
            text = t.format(person=person, adj=w)
            out.append(TextExample(text[:1].upper() + text[1:], None, meta={"template": t, "polarity": polarity,
                                                                              "word": w}))
    return out


def ner_suite(swapper: Swapper) -> list[Sentence]:
    """Base sentences for an NER suite (names lists only): PER and LOC gold tags."""
    if swapper.kind != "names":
        return []
    g0 = swapper.groups[0]
    firsts = [n for v in swapper.terms.first_names[g0].values() for n in v[:3]]
    lasts = swapper.terms.last_names[g0][:3]
    out = []
    for t, place, (i, first) in product(NER_TEMPLATES, PLACES[:3], enumerate(firsts)):
        name = [first, lasts[i % len(lasts)]] if i % 2 == 0 else [first]
        words, tags = [], []
        for piece in t.split():
            if piece == "{name}":
                words += name
                tags += ["B-PER"] + ["I-PER"] * (len(name) - 1)
            elif piece == "{place}":
                words.append(place)
                tags.append("B-LOC")
            else:
                words.append(piece)
                tags.append("O")
        out.append(Sentence(words, tags, source="<template>"))
    return out

"""Text-aware recommendation: fine-tune a pair model on users' behaviour (profile text of what a
user liked before, paired with a candidate item's text), rank in two stages (collaborative, text
and popularity candidates; pair-model re-scoring and a combiner fitted on the dev period), and evaluate
by time: every metric ranks with only the history known at that moment.

data.py (interaction logs, users), catalogue.py (items and the title join), history.py (the
time-ordered state, profile text, training pairs), embed.py (mean-pooled sentence embeddings),
ranker.py (stage 1, the combiner),
scorers/ (one file a signal, a registry by name), metrics.py, model.py (the recommender folder:
train, load, refit, rank), evaluate.py (the time-ordered evaluation), report.py (its files)."""

"""The experiment pipeline and the model card: `trustfit run experiment.toml` trains, evaluates,
runs the configured audits and writes a card (Hugging Face README.md with model-index metadata,
a self-contained card.html, card.json) filled only from measured files; `trustfit report`
re-renders it."""

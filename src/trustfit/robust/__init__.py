"""Robustness: adversarial training on the word embeddings (FGM, PGD, FreeLB plugins on the
training loop), data-level adversarial training with the audit's own perturbation families,
and the attack audit (`trustfit audit robustness`)."""

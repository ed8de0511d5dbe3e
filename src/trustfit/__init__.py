"""trustfit: fine-tune Hugging Face encoders for NER and text classification, trustworthily."""

__version__ = "0.1.0"

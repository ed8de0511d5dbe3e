"""Model sources (packaged default, local folder, hub id), loading and HF-format saving."""

from trustfit.models.backbone import (default_model_path, load_token_classifier, load_tokenizer,
                                      resolve_model_source, save_model)

__all__ = ["default_model_path", "load_token_classifier", "load_tokenizer", "resolve_model_source", "save_model"]

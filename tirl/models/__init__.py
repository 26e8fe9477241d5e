from tirl.models.load import ALIASES, LoadedModel, ModelLoadError, cache_dir, load_model, resolve_model_path

__all__ = ["ALIASES", "LoadedModel", "ModelLoadError", "cache_dir", "load_model", "resolve_model_path"]

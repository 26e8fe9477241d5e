"""Loading a config: recipe YAML files, ``section.field=value`` overrides, one-line errors,
resuming a run with its saved config, and saving the resolved tree into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tirl.config.base import ConfigError
from tirl.config.root import Config


def _format_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(
            f"{loc}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and not isinstance(err.get("input"), dict) else "")
        )
    return "config error: " + "; ".join(parts)


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config error: {dotted}: {k} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``a.b=value`` pairs; values are parsed as YAML scalars/lists (``3``, ``true``, ``[1,2]``)."""
    tree: dict = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"config error: override {o!r} is not of the form section.field=value")
        key, raw = o.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(tree, key.strip(), value)
    return tree


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# the repository's recipes/ directory (tirl/config/load.py -> tirl/config -> tirl -> repo)
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def recipe_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    q = RECIPES_DIR / f"{name}.yaml"
    if q.exists():
        return q
    known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.exists() else []
    raise ConfigError(f"config error: no recipe {name!r} (a YAML path or one of: {', '.join(known)})")


def load_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    tree: dict = {}
    if recipe:
        path = recipe_path(recipe)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config error: {path} is not valid YAML ({e})") from e
        if not isinstance(tree, dict):
            raise ConfigError(f"config error: {path} must hold a mapping of sections")
        tree.pop("recipe", None)
    tree = _merge(tree, parse_overrides(overrides or []))
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_error(e)) from None


# On resume these sections are the run's identity: changing them would make the resumed steps a
# different algorithm, model or data than the checkpoint's, so they are refused.
RESUME_FIXED = ("algo", "strategy", "reward", "model", "task", "rollout", "sft", "run")


def resume_config(run_dir: Path, overrides: list[str] | None = None) -> tuple[Config, list[str]]:
    """The config to continue the run in ``run_dir``: its saved config.yaml with ``overrides``
    applied, placed in ``run_dir`` itself whatever run.out_dir/run.name it names (a copied or
    moved run continues where it is). Returns the config and one line per applied override
    (``optim.lr: 2e-06 -> 1e-05``); overrides of RESUME_FIXED sections are refused."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"config error: cannot resume {run_dir}: it has no config.yaml (is it a run directory?)")
    overrides = list(overrides or [])
    fixed = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0].split(".")[0] in RESUME_FIXED]
    if fixed:
        raise ConfigError(
            f"config error: --resume continues the run as configured; {', '.join(fixed)} would change its "
            f"{'/'.join(RESUME_FIXED)} (start a new run for that)"
        )
    before = load_config(str(saved))
    cfg = load_config(str(saved), overrides)
    cfg.run.out_dir, cfg.run.name = str(run_dir.resolve().parent), run_dir.resolve().name
    applied = []
    for o in overrides:
        key = o.split("=", 1)[0]
        old, new = _get_path(before, key), _get_path(cfg, key)
        applied.append(f"{key}: {old!r} -> {new!r}" if old != new else f"{key}: {new!r} (unchanged)")
    return cfg, applied


def _get_path(cfg: BaseModel, dotted: str) -> Any:
    node: Any = cfg
    for k in dotted.split("."):
        node = node.get(k) if isinstance(node, dict) else getattr(node, k, None)
    return node


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

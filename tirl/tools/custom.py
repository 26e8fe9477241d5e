"""``tools.custom``: tools of the user's own classes, by ``package.module:ClassName``.

The module is imported, the class (or any callable that returns a tool) is called with the
configured keyword arguments, and the result is checked against the ``Tool`` interface
(``tirl.tools.checks``). Everything that can go wrong (a module that is not importable, a
missing class, a bad keyword argument, a constructor that raises, an object that is not a
Tool) is a ``ToolSetupError``: one line, raised before the model loads. docs/DESIGN.md,
"Bring your own tools and data", has a worked example.
"""

from __future__ import annotations

import importlib
from typing import Any

from tirl.tools.base import Tool
from tirl.tools.checks import ToolSetupError, check_tool


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def resolve_target(target: str, where: str) -> Any:
    """The object ``package.module:Name`` (``Name`` may be dotted) names."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ToolSetupError(f"{where}: {target!r} is not of the form 'package.module:ClassName'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):  # the module itself (or its package) is missing
            raise ToolSetupError(f"{where}: cannot import {module_name!r} (no module named {e.name!r}); install it or put it on PYTHONPATH") from None
        raise ToolSetupError(f"{where}: importing {module_name!r} failed ({_describe(e)})") from None
    except Exception as e:  # noqa: BLE001 - the user's module raised while importing
        raise ToolSetupError(f"{where}: importing {module_name!r} failed ({_describe(e)})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ToolSetupError(f"{where}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_custom_tool(target: str, kwargs: dict[str, Any] | None = None, where: str = "tools.custom") -> Tool:
    """A checked tool instance built from ``target`` with ``kwargs``."""
    factory = resolve_target(target, where)
    if not callable(factory):
        raise ToolSetupError(f"{where}: {target} is a {type(factory).__name__}, not a class or function")
    kwargs = dict(kwargs or {})
    try:
        tool = factory(**kwargs)
    except TypeError as e:  # most often a keyword the class does not take
        raise ToolSetupError(f"{where}: {target}(**{kwargs!r}) failed ({_describe(e)})") from None
    except Exception as e:  # noqa: BLE001 - the user's constructor raised
        raise ToolSetupError(f"{where}: {target}(**{kwargs!r}) failed ({_describe(e)})") from None
    return check_tool(tool, f"{where} ({target})")

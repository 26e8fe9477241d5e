"""The Tool interface: a name, a JSON schema, and an async ``run`` that returns an Observation.

Tools never raise on the model's input: a bad argument, an exception in user code or a
timeout is an Observation the model reads. Only tirl's own infrastructure failing (a worker
that cannot be started) sets ``Observation.infra_error``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tirl.types import Observation, ToolCall


@runtime_checkable
class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    main_arg: str  # the argument a tag protocol puts between its tags (e.g. "code")

    async def run(self, call: ToolCall, session: str) -> Observation:
        """Execute one call. ``session`` names the trajectory: state (variables) persists
        across calls with the same session and never crosses sessions."""
        ...

    async def close_session(self, session: str) -> None:
        """Forget a trajectory's state."""
        ...

    async def aclose(self) -> None:
        """Release processes and resources."""
        ...


def schema(tool: Tool) -> dict[str, Any]:
    """OpenAI/Hermes-style function schema of a tool."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }

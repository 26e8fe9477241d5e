"""``tirl tool mcp`` and ``tirl tool custom``: try a tool you bring by hand, as ``tirl tool python``
tries the sandbox (docs/BRING_YOUR_OWN.md).

    tirl tool mcp --command 'python -m my_server' --list
    tirl tool mcp --url http://127.0.0.1:8000/mcp --call add --args '{"a": 1, "b": 2}'
    tirl tool mcp --command 'python -m my_server' --call search --input 'capital of Peru'
    tirl tool custom my_tools.units:UnitConverter --kwargs '{"digits": 2}' --input '3.5 km in mi'

``--list`` prints one JSON object per tool (name, description, main_arg, parameters); a call
prints the observation as ``tirl tool python`` does (exit status 1 when tirl's machinery
failed). ``--input`` is the text a tag-protocol model writes between the tool's tags; ``--args``
the JSON arguments object a Hermes model writes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from tirl.cli.tool_cmd import _emit
from tirl.errors import UserError


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UserError(f"{option} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise UserError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def _arguments(tool, args: str | None, text: str | None) -> dict[str, Any]:
    """The call's arguments from --args, or from --input read the way the tag protocol reads
    the text between the tool's tags."""
    if args is not None and text is not None:
        raise UserError("give --args (a JSON object) or --input (the text between the tags), not both")
    if text is None:
        return _json_object(args, "--args")
    if tool.main_arg == "":
        return _json_object(text or "{}", "--input (this tool takes a JSON object of its arguments)")
    return {tool.main_arg: text}


def _call(tools: list, name: str, arguments: dict[str, Any]) -> None:
    from tirl.types import ToolCall

    by_name = {t.name: t for t in tools}
    if name not in by_name:
        raise UserError(f"no tool {name!r}; the tools are: {', '.join(by_name)}")

    async def go():
        try:
            return await by_name[name].run(ToolCall(name=name, arguments=arguments), session="cli")
        finally:
            for t in tools:
                await t.aclose()

    _emit(asyncio.run(go()))


def _list(tools: list) -> None:
    for t in tools:
        typer.echo(json.dumps({"name": t.name, "description": t.description, "main_arg": t.main_arg, "parameters": t.parameters}, ensure_ascii=False))


def mcp_cmd(
    command: str | None = typer.Option(None, "--command", help="Start this stdio MCP server (split as a shell would)."),
    url: str | None = typer.Option(None, "--url", help="A running streamable-HTTP MCP server, e.g. http://127.0.0.1:8000/mcp."),
    list_tools: bool = typer.Option(False, "--list", help="Print the server's tools (the default without --call)."),
    call: str | None = typer.Option(None, "--call", help="Call this tool (the server's name)."),
    args: str | None = typer.Option(None, "--args", help="The call's arguments, a JSON object."),
    text: str | None = typer.Option(None, "--input", help="The call's input as a tag-protocol model writes it."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.001, max=86400.0, help="Wall-clock limit of the call in seconds."),
):
    """List the tools of an MCP server, or call one."""
    from pydantic import ValidationError

    from tirl.config import MCPServerSection
    from tirl.tools.mcp import MCPServerConfig, open_mcp_tools

    try:
        section = MCPServerSection(command=command, url=url, timeout_s=timeout)
    except ValidationError as e:
        raise UserError("; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from None
    tools = open_mcp_tools(MCPServerConfig(**section.model_dump()), where="tirl tool mcp")
    if call is None:
        if args is not None or text is not None:
            asyncio.run(_close(tools))
            raise UserError("--args and --input go with --call NAME")
        _list(tools)
        asyncio.run(_close(tools))
        return
    try:
        tool = next((t for t in tools if t.name == call), None)
        arguments = _arguments(tool, args, text) if tool is not None else {}
    except BaseException:
        asyncio.run(_close(tools))
        raise
    _call(tools, call, arguments)


async def _close(tools: list) -> None:
    for t in tools:
        await t.aclose()


def custom_cmd(
    target: str = typer.Argument(..., help="package.module:ClassName of the tool."),
    kwargs: str | None = typer.Option(None, "--kwargs", help="Constructor keyword arguments, a JSON object."),
    list_tools: bool = typer.Option(False, "--list", help="Print the tool's spec instead of calling it."),
    args: str | None = typer.Option(None, "--args", help="The call's arguments, a JSON object."),
    text: str | None = typer.Option(None, "--input", help="The call's input as a tag-protocol model writes it."),
):
    """Build a tools.custom class and call it once (or print its spec with --list)."""
    from tirl.tools.custom import load_custom_tool

    tool = load_custom_tool(target, _json_object(kwargs, "--kwargs"), where="tirl tool custom")
    if list_tools:
        _list([tool])
        asyncio.run(_close([tool]))
        return
    try:
        arguments = _arguments(tool, args, text)
    except BaseException:
        asyncio.run(_close([tool]))
        raise
    _call([tool], tool.name, arguments)

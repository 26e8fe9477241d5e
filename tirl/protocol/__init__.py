from tirl.protocol.base import ParsedTurn, Protocol
from tirl.protocol.hermes import HermesProtocol
from tirl.protocol.tag import TagProtocol

PROTOCOLS = ("tag", "hermes")


def make_protocol(name: str, tools, tokenizer, system_prompt: str | None = None) -> Protocol:
    if name == "tag":
        return TagProtocol(tools, system_prompt)
    if name == "hermes":
        return HermesProtocol(tools, tokenizer, system_prompt)
    raise ValueError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")


__all__ = ["HermesProtocol", "PROTOCOLS", "ParsedTurn", "Protocol", "TagProtocol", "make_protocol"]

"""Credentials: which secret each slave's agent runs with, and which ones are spent until when.

Slaves are spread over the configured credentials (c1 → the first, c2 → the second, …). A
credential that ran out of budget with a known reset time is avoided until then, by every slave;
when all are spent the slave waits for the earliest reset and resumes by itself.
"""

from __future__ import annotations

import os

import msgspec

from ..config import AgentConfig, Credential
from . import secrets
from .model import State

DEFAULT = "default"  # no credentials configured: the agent uses the environment as it is

INJECT = {"claude": "ANTHROPIC_API_KEY", "codex": "CODEX_API_KEY", "gemini": "GEMINI_API_KEY"}


def inject_var(cred: Credential, agent: AgentConfig, value: str) -> str:
    if cred.inject:
        return cred.inject
    if agent.kind == "claude" and value.startswith("sk-ant-oat"):
        return "CLAUDE_CODE_OAUTH_TOKEN"  # a subscription (OAuth) token, not an API key
    return INJECT.get(agent.kind, cred.env)


class Choice(msgspec.Struct, frozen=True):
    name: str
    env: dict[str, str]  # what to add to the agent's environment
    wait_until: float | None = None  # every credential is spent: wait until then


def exhausted(state: State, now: float) -> dict[str, float]:
    return {name: until for name, until in state.credentials.items() if until > now}


def choose(creds: tuple[Credential, ...], agent: AgentConfig, slave_index: int, state: State, now: float) -> Choice:
    spent = exhausted(state, now)
    if not creds:
        if DEFAULT in spent:
            return Choice(DEFAULT, {}, spent[DEFAULT])
        return Choice(DEFAULT, {})
    order = [creds[(slave_index + i) % len(creds)] for i in range(len(creds))]
    for cred in order:
        if cred.name in spent:
            continue
        value = os.environ.get(cred.env, "")
        secrets.register(value)
        return Choice(cred.name, {inject_var(cred, agent, value): value} if value else {})
    return Choice(order[0].name, {}, min(spent[c.name] for c in creds))


def missing(creds: tuple[Credential, ...]) -> list[Credential]:
    """Credentials whose environment variable is not set (doctor reports them)."""
    return [c for c in creds if not os.environ.get(c.env)]

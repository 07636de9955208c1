"""`clanker.yaml`: find it, read it, validate it against the schema, apply defaults.

Pipeline: find (walk up from cwd) → parse (YAML nodes keep line numbers) → validate each key
against SCHEMA (schema.py) → build a frozen Config (model.py holds the settings and their
defaults). Every problem is one ConfigError naming file:line and key.
"""

from .load import PLACES, SPECIAL, find_config, load
from .model import (
    AGENT_KINDS,
    CONFIG_NAME,
    DEFAULT_SETUP_INPUTS,
    LOCAL,
    AgentConfig,
    BudgetConfig,
    CapacityConfig,
    Config,
    Credential,
    ExecutorConfig,
    NotifyConfig,
    Price,
    SourceConfig,
    WorktreeConfig,
)
from .schema import AGENT_SCHEMA, SCHEMA

__all__ = [
    "AGENT_KINDS",
    "LOCAL",
    "AGENT_SCHEMA",
    "CONFIG_NAME",
    "DEFAULT_SETUP_INPUTS",
    "PLACES",
    "SCHEMA",
    "SPECIAL",
    "AgentConfig",
    "BudgetConfig",
    "CapacityConfig",
    "Config",
    "Credential",
    "ExecutorConfig",
    "NotifyConfig",
    "SourceConfig",
    "Price",
    "WorktreeConfig",
    "find_config",
    "load",
]

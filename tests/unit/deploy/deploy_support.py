"""What the deployment-artifact tests share: a Dockerfile reader, console scripts, and which ``VAP_*``
names each process's settings class reads. No Docker, Helm or servers here."""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from vap_api.settings import ApiSettings, InboxSettings, RelaySettings
from vap_common.settings import DatabaseServiceSettings
from vap_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[3]

# The settings class each process reads, by its console script (the name a container runs).
SETTINGS_BY_COMMAND: dict[str, type[DatabaseServiceSettings]] = {
    "vap-api": ApiSettings,
    "vap-relay": RelaySettings,
    "vap-inbox": InboxSettings,
    "vap-operator": OperatorSettings,
    "vap-orchestrator": OperatorSettings,
    # Alembic's env.py and the topic set-up read the shared settings only.
    "alembic": DatabaseServiceSettings,
    "python": DatabaseServiceSettings,
}


# --- settings ---------------------------------------------------------------------------------------


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Model``, ``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            model = _nested_model(argument)
            if model is not None:
                return model
    return None


def unknown_setting(settings: type[BaseSettings], env_name: str) -> str | None:
    """Why ``settings`` would ignore ``env_name`` (its classes use ``extra="ignore"``), or None if it is a field."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    delimiter = settings.model_config.get("env_nested_delimiter") or None
    if not env_name.upper().startswith(prefix.upper()):
        return f"{env_name} lacks the {prefix} prefix"
    parts = env_name[len(prefix) :].lower().split(delimiter) if delimiter else [env_name[len(prefix) :].lower()]
    model: type[BaseModel] = settings
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            return f"{env_name}: {model.__name__} has no field {part!r} (fields: {sorted(model.model_fields)})"
        if depth < len(parts) - 1:
            nested = _nested_model(model.model_fields[part].annotation)
            if nested is None:
                return f"{env_name}: {model.__name__}.{part} is not a group of settings"
            model = nested
    return None


def load_settings(
    settings: type[DatabaseServiceSettings], env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> DatabaseServiceSettings:
    """``settings`` as a process would build it from exactly ``env`` (the test's own VAP_* are removed)."""
    for name in list(os.environ):
        if name.upper().startswith("VAP_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings()


# --- packages -----------------------------------------------------------------------------------------


def console_scripts(package_dir: Path) -> dict[str, str]:
    """``[project.scripts]`` of ``package_dir/pyproject.toml``."""
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    return dict(project.get("scripts", {}))


# --- Dockerfiles ------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One build stage with what it inherits from the stage it starts FROM."""

    base: str
    name: str | None
    user: str | None = None
    healthcheck: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    workdir: str | None = None
    expose: set[int] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[list[str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return [*(self.entrypoint or []), *(self.cmd or [])]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def _exec_form(arguments: str) -> list[str]:
    """JSON exec form (``["a", "b"]``) as a list; shell form as ``["/bin/sh", "-c", ...]``."""
    if arguments.startswith("["):
        value = json.loads(arguments)
        assert isinstance(value, list)
        return [str(item) for item in value]
    return ["/bin/sh", "-c", arguments]


def _env_pairs(arguments: str) -> dict[str, str]:
    if "=" not in arguments.split(" ", 1)[0]:
        name, _, value = arguments.partition(" ")
        return {name: value.strip()}
    return dict(pair.split("=", 1) for pair in re.findall(r"\S+=\S+", arguments))


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of ``path``, each carrying its parent's USER, ENV, CMD... as Docker does."""
    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}
    global_args: dict[str, str] = {}  # ARGs before the first FROM, usable in FROM lines (their defaults)
    for keyword, arguments in _instructions(path.read_text()):
        if keyword == "ARG":
            if not stages:
                global_args.update(
                    dict(word.split("=", 1) if "=" in word else (word, "") for word in arguments.split())
                )
            continue
        if keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda match: global_args[match.group(1)], arguments).split()
            base = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            parent = by_name.get(base)
            stage = Stage(base=base, name=name) if parent is None else copy.deepcopy(parent)
            stage.base, stage.name = base, name
            stages.append(stage)
            if name:
                by_name[name] = stage
            continue
        stage = stages[-1]
        if keyword == "USER":
            stage.user = arguments
        elif keyword == "HEALTHCHECK":
            stage.healthcheck = arguments
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = _exec_form(arguments)
            stage.cmd = None  # Docker resets CMD when ENTRYPOINT is set
        elif keyword == "CMD":
            stage.cmd = _exec_form(arguments)
        elif keyword == "WORKDIR":
            stage.workdir = arguments
        elif keyword == "EXPOSE":
            stage.expose |= {int(port.split("/")[0]) for port in arguments.split()}
        elif keyword == "ENV":
            stage.env.update(_env_pairs(arguments))
        elif keyword == "COPY":
            stage.copies.append([word for word in arguments.split() if not word.startswith("--")])
        elif keyword == "RUN":
            stage.runs.append(arguments)
    return stages


def stage(stages: list[Stage], target: str | None) -> Stage:
    """The stage ``docker build --target`` picks (the last one without a target)."""
    if target is None:
        return stages[-1]
    (found,) = [candidate for candidate in stages if candidate.name == target]
    return found


def external_bases(stages: list[Stage]) -> list[str]:
    names = {candidate.name for candidate in stages if candidate.name}
    return [candidate.base for candidate in stages if candidate.base not in names]

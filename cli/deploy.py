"""``worklets deploy``: a definition file to a worklet, created by name or updated.

A definition is YAML or JSON in the shape of docs/api.md. A code block may say
``source_file: greet.py`` (relative to the definition file) instead of giving ``source``
inline. Deploying a definition equal to the worklet's current one changes nothing, so running
a deploy twice does not make a new version.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from cli.client import Json, Registry
from cli.config import Config
from cli.output import dump
from shared.schemas import Definition, WorkletBlock


class DefinitionFileError(Exception):
    """The file cannot be read as a definition; the message names the file and block."""


def load_definition(path: Path) -> Json:
    """Read ``path`` and inline every ``source_file``; the registry validates the rest."""
    try:
        text = path.read_text()
    except OSError as err:
        raise DefinitionFileError(f"{path}: {err.strerror or err}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise DefinitionFileError(f"{path}: not valid {path.suffix[1:] or 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise DefinitionFileError(f"{path}: a definition is a mapping with `name` and `blocks`")
    blocks = data.get("blocks")
    if isinstance(blocks, list):
        data["blocks"] = [_inline_source(path, block) for block in blocks]
    return data


def _inline_source(path: Path, block: Any) -> Any:
    if not isinstance(block, dict) or "source_file" not in block:
        return block
    block = dict(block)
    name = block.get("id", "?")
    relative = block.pop("source_file")
    if "source" in block:
        raise DefinitionFileError(f"{path}: block `{name}` has both `source` and `source_file`")
    source_path = path.parent / str(relative)
    try:
        block["source"] = source_path.read_text()
    except OSError as err:
        raise DefinitionFileError(
            f"{path}: block `{name}`: cannot read {source_path}: {err.strerror or err}"
        ) from None
    return block


def _comparable(definition: Any) -> Definition | None:
    """The definition as the platform sees it, without what the registry resolves itself."""
    try:
        parsed = msgspec.convert(definition, Definition)
    except msgspec.ValidationError:
        return None
    blocks = [
        msgspec.structs.replace(b, worklet_id=None) if isinstance(b, WorkletBlock) else b
        for b in parsed.blocks
    ]
    return msgspec.structs.replace(parsed, blocks=blocks)


@dataclass(frozen=True)
class Deployed:
    id: str
    name: str
    version: int
    action: Literal["created", "updated", "unchanged"]

    def as_json(self) -> Json:
        return {"id": self.id, "name": self.name, "version": self.version, "action": self.action}


def deploy(registry: Registry, app: str, definition: Json) -> Deployed:
    """Create the worklet named in ``definition``, or update it if its definition changed."""
    name = definition.get("name")
    existing = next((w for w in registry.list_worklets(app) if w.get("name") == name), None)
    if existing is None:
        created = registry.create_worklet(app, definition)
        return Deployed(created["id"], created["name"], created["version"], "created")
    current = registry.get_worklet(app, existing["id"])
    wanted = _comparable(definition)
    if wanted is not None and wanted == _comparable(current.get("definition")):
        return Deployed(current["id"], current["name"], current["version"], "unchanged")
    updated = registry.update_worklet(app, existing["id"], definition)
    return Deployed(updated["id"], updated["name"], updated["version"], "updated")


def command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    definition = load_definition(Path(args.file))
    with config.registry() as registry:
        result = deploy(registry, app, definition)
    if args.json:
        dump(result.as_json())
    else:
        print(f"{result.name}: id {result.id} version {result.version} ({result.action})")
    return 0

"""JSON Schema files in `schemas/`, generated from the code's own models."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from .engine.actions import OperatorAction
from .engine.events import EVENT_MODELS
from .engine.records import Alert, BreakerCommand, DeadLetter
from .engine.types import RuleFile


def generate() -> dict[str, str]:
    """file name -> JSON text."""
    docs = {}
    for topic, model in EVENT_MODELS.items():
        docs[f"event.{topic}.schema.json"] = model.model_json_schema(mode="validation")
    docs["operator-action.schema.json"] = OperatorAction.model_json_schema(mode="validation")
    docs["alert.schema.json"] = Alert.model_json_schema(mode="serialization")
    docs["breaker-command.schema.json"] = BreakerCommand.model_json_schema(mode="serialization")
    docs["dead-letter.schema.json"] = DeadLetter.model_json_schema(mode="serialization")
    docs["rules.schema.json"] = TypeAdapter(RuleFile).json_schema(mode="validation")
    out = {}
    for name, schema in docs.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write(directory: Path, check: bool = False) -> list[str]:
    """Write the schemas, or with check=True list the files that are stale."""
    stale = []
    for name, text in generate().items():
        p = directory / name
        if not p.exists() or p.read_text() != text:
            stale.append(name)
            if not check:
                directory.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
    return stale

"""The spec's JSON Schema (from the pydantic models), for `lrfind schema` and editor completion."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_FILE = "lrfind.schema.json"  # committed beside the example configs; a test keeps it equal to `lrfind schema`
MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}"

# model, data, optimizer and loss may also be written the Hydra or Lightning CLI way (see spellings.py).
_OTHER_SPELLINGS = {
    "HydraTarget": {
        "type": "object",
        "description": "Hydra spelling: _target_ (a dotted path) and the target's arguments beside it.",
        "properties": {"_target_": {"type": "string"}},
        "required": ["_target_"],
    },
    "LightningTarget": {
        "type": "object",
        "description": "Lightning CLI spelling: class_path (a dotted path) and init_args.",
        "properties": {"class_path": {"type": "string"}, "init_args": {"type": "object"}},
        "required": ["class_path"],
    },
}


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file: the pydantic models' schema, plus the other spellings of a target."""
    from .spec import Spec

    schema = Spec.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "lrfind spec"}
    schema["$defs"].update(_OTHER_SPELLINGS)
    for section in ("model", "data", "optimizer", "loss"):
        schema["properties"][section] = _with_spellings(schema["properties"][section])
    return schema


def _with_spellings(prop: dict[str, Any]) -> dict[str, Any]:
    """{"$ref": X} (or anyOf [X, null]) becomes anyOf [X, HydraTarget, LightningTarget(, null)]; other keys stay."""
    others = [{"$ref": f"#/$defs/{name}"} for name in _OTHER_SPELLINGS]
    rest = {k: v for k, v in prop.items() if k not in ("$ref", "anyOf")}
    choices = prop["anyOf"] if "anyOf" in prop else [{"$ref": prop["$ref"]}]
    return {"anyOf": [choices[0], *others, *choices[1:]], **rest}


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2) + "\n"

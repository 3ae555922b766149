"""A small validator for the JSON Schema subset the Grafana plugin's OpenAPI spec uses
(type, properties, required, items, minItems, maxItems, enum, anyOf, oneOf, $ref)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).parent / "contract" / "grafana-json-openapi.yaml"


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def response_schema(path: str, method: str = "post") -> dict[str, Any]:
    return spec()["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    if "$ref" in schema:
        node: Any = spec()
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return errors(value, node, where)
    for key, need_all in (("anyOf", False), ("oneOf", True)):
        if key in schema:
            results = [errors(value, sub, where) for sub in schema[key]]
            ok = sum(1 for r in results if not r)
            if ok == 0 or (need_all and ok > 1):
                return [f"{where}: matches {ok} of the {key} alternatives: " + " | ".join(r[0] for r in results if r)]
    out: list[str] = []
    kind = schema.get("type")
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: expected {kind}, got {type(value).__name__}"]
    elif kind == "null":
        if value is not None:
            return [f"{where}: expected null, got {type(value).__name__}"]
    elif kind in _TYPES and not isinstance(value, _TYPES[kind]):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for req in schema.get("required", []):
            if req not in value:
                out.append(f"{where}: missing required {req!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                out += errors(value[name], sub, f"{where}.{name}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                out += errors(item, schema["items"], f"{where}[{i}]")
    return out


# The spec says a table's rows are `anyOf: [string, number]`, while its own example, and
# the plugin's table-to-frame conversion, use rows that are arrays of cells; a missing
# measurement is a null cell. fogd is held to the example: each row an array of cells.
TABLE_ROW = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}}


def query_errors(frames: Any) -> list[str]:
    """Validate a /query reply against the spec, with table rows checked as above."""
    schema = response_schema("/query")
    out = errors(frames, {"type": "array"})
    for i, frame in enumerate(frames if isinstance(frames, list) else []):
        if isinstance(frame, dict) and frame.get("type") == "table":
            table_schema = dict(schema["items"]["anyOf"][1])
            table_schema["properties"] = {**table_schema["properties"], "rows": {"type": "array", "items": TABLE_ROW}}
            out += errors(frame, table_schema, f"$[{i}]")
        else:
            out += errors(frame, schema["items"], f"$[{i}]")
    return out

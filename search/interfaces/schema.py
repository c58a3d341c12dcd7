"""`stacktune schema`: the JSON Schema of the search spec or of the training config, for editors that validate and
complete YAML (the YAML language server reads a `# yaml-language-server: $schema=FILE` line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from ..errors import ConfigError
from ..spec.schema import SearchSpec, TrainConfig

SCHEMAS: dict[str, type[BaseModel]] = {"spec": SearchSpec, "train": TrainConfig}


class _Draft202012(GenerateJsonSchema):
    """Pydantic's own schema generator (draft 2020-12), with the `$schema` keyword that names the draft."""

    def generate(self, schema, mode="validation"):
        return {"$schema": self.schema_dialect, **super().generate(schema, mode=mode)}


def json_schema(kind: str = "spec") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what the loader accepts as a search spec (`spec`) or training config
    (`train`); raises ConfigError for any other kind."""
    model = SCHEMAS.get(kind)
    if model is None:
        raise ConfigError(f"unknown schema {kind!r}: expected one of {', '.join(SCHEMAS)}")
    return model.model_json_schema(schema_generator=_Draft202012, mode="validation")


def schema_command(kind: str, *, out: str | None) -> int:
    """The CLI's `schema`: prints the schema, or writes it to `out` and prints the path; returns 0."""
    text = json.dumps(json_schema(kind), indent=2) + "\n"
    if out is None:
        print(text, end="")
        return 0
    path = Path(out)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    print(path)
    return 0

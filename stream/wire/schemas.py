"""The JSON Schemas of the worker's outputs, shipped beside this module.

===========================  =================================  =====================
file                         ``$id``                            what it describes
===========================  =================================  =====================
``anomaly.v1.schema.json``   ``urn:tripwire:schema:anomaly:1``  an anomaly event (the
                                                                whole CloudEvent)
``anomaly-data.v1.schema…``  ``urn:tripwire:schema:anomaly-…``  its ``data`` (the
                                                                event's ``dataschema``)
``score.v1.schema.json``     ``urn:tripwire:schema:score:1``    a score record
===========================  =================================  =====================

A change to a format is a new version: a new file and ``$id``, the old ones kept,
so that a consumer can validate what it holds against what it was written with.
Dead letters have no schema: their value is the refused input, byte for byte.

>>> output_problems("score", {"id": "evt-1"})[0]
"'entity' is a required property"
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_FILES = {
    "anomaly": "anomaly.v1.schema.json",
    "anomaly-data": "anomaly-data.v1.schema.json",
    "score": "score.v1.schema.json",
}


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (a key of ``SCHEMA_FILES``)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILES[name]).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator of schema ``name`` that resolves the others by their ``$id``."""
    registry: Registry[Any] = Registry().with_resources(
        (schema(n)["$id"], Resource.from_contents(schema(n))) for n in SCHEMA_FILES
    )
    return Draft202012Validator(schema(name), registry=registry)


def output_problems(name: str, doc: object) -> list[str]:
    """Every way ``doc`` breaks schema ``name``, one message each; empty when valid."""
    errors = sorted(validator(name).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [
        e.message if not e.absolute_path else f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in errors
    ]

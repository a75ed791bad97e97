"""The quick-pass prompt: a file in the package, with a version number bumped by hand.

The version is part of the soulprint asset's ``code_version``: bumping it marks every user's
soulprint stale in the Dagster UI (and the automation condition re-runs only that asset). It is
a number in the file rather than a hash of it, so a whitespace edit does not re-bill every user.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import NamedTuple

from soulprint_pipeline.soulprint.field_evidence import EVIDENCE_KEY
from soulprint_pipeline.soulprint.sections import FIELD_DEFINITIONS, SECTION_FIELDS


class Prompt(NamedTuple):
    """The system prompt and its version."""

    version: int
    system: str


def _schema() -> str:
    """The answer's shape, each field given its definition (a list field as a list of one)."""
    example: dict[str, dict[str, object]] = {
        section: {
            name: [FIELD_DEFINITIONS[section][name]]
            if kind is list
            else FIELD_DEFINITIONS[section][name]
            for name, kind in fields.items()
        }
        for section, fields in SECTION_FIELDS.items()
    }
    example[EVIDENCE_KEY] = {
        "section.field": "a short verbatim quote of the person's words behind that field",
        "section.list_field": ["up to 3 quotes"],
    }
    return json.dumps(example, indent=2, ensure_ascii=False)


@cache
def quick_pass_prompt() -> Prompt:
    """The prompt in ``prompts/quick_pass.md`` (a ``version: N`` line, ``---``, the text)."""
    text = (
        files("soulprint_pipeline.soulprint").joinpath("prompts/quick_pass.md").read_text("utf-8")
    )
    header, _, body = text.partition("\n---\n")
    version = int(header.split(":", 1)[1])
    return Prompt(version, body.strip().replace("{schema}", _schema()))


def user_message(sample_block: str) -> str:
    """The user turn: the delimited sample and the request."""
    return (
        f"{sample_block}\n\n"
        "Write the soulprint of the person whose [user] lines appear above, as the JSON object "
        "described in your instructions."
    )

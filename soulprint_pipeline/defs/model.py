"""The ``llm`` resource: who writes the soulprint (``SOULPRINT_MODEL``).

``offline`` (the embedded default) derives it deterministically from the data, with no network
and no keys; the Bedrock and direct-Anthropic backends plug in here.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from soulprint_pipeline.lake import StoredParts
from soulprint_pipeline.soulprint import (
    ProfileEvidence,
    evidence_summary,
    offline_soulprint,
    validate_sections,
)

#: Bumped by hand when what the soulprint says changes (not on a whitespace edit), so every
#: user's soulprint shows as stale in the UI and a backfill re-runs only this asset.
SOULPRINT_VERSION = 1

BACKENDS = ("offline",)
EVIDENCE_COLUMNS = None  # ProfileEvidence reads most columns; reading all is simplest


@dataclass
class Generated:
    """A soulprint and what producing it cost."""

    sections: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class SoulprintModel(dg.ConfigurableResource):
    """Writes the quick-pass soulprint from a user's parsed conversations."""

    backend: str = "offline"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.backend not in BACKENDS:
            raise dg.DagsterInvalidConfigError(
                f"SOULPRINT_MODEL={self.backend!r} is not available; choose one of {BACKENDS}.",
                [],
                self.backend,
            )

    @property
    def model_id(self) -> str:
        """The model that writes the soulprint."""
        return "offline-heuristics"

    def generate(
        self, parts: StoredParts, on_progress: Callable[[float], None] | None = None
    ) -> Generated:
        """The validated sections for the rows in ``parts``."""
        started = time.perf_counter()
        evidence = ProfileEvidence()
        for index, path in enumerate(parts.paths):
            for batch in parts.batches_of(path, EVIDENCE_COLUMNS):
                evidence.add(batch)
            if on_progress is not None:
                on_progress((index + 1) / len(parts.paths))
        sections = validate_sections(offline_soulprint(evidence))
        return Generated(
            sections,
            {
                "model": self.model_id,
                "soulprint_version": SOULPRINT_VERSION,
                "input_tokens": 0,
                "output_tokens": 0,
                "estimated_cost_usd": 0.0,
                "latency_s": round(time.perf_counter() - started, 3),
                "evidence": dg.MetadataValue.json(evidence_summary(evidence)),
            },
        )

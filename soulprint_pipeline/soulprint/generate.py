"""The soulprint step, without Dagster: a user's parsed rows in, validated sections out.

Three backends write the soulprint:

* ``offline`` (the default): derived deterministically from all the rows, no network.
* ``bedrock``: Claude Haiku 4.5 on AWS Bedrock through ``anthropic.AsyncAnthropicBedrock``;
  region and credentials come from the standard AWS chain (``AWS_REGION``, ``AWS_*`` keys,
  profiles, roles) and ``ANTHROPIC_BEDROCK_BASE_URL``, never from code or run config.
* ``anthropic``: the same model on the direct API (``ANTHROPIC_API_KEY``).

The model backends see a token-budgeted sample of the conversations (sampling.py), so a
soulprint costs the same for a 2 GB export as for a 50 MB one::

    generated = generate(parts, ModelSettings(backend="bedrock"))
    generated.sections                             # the five validated sections
    generated.metadata                             # model, tokens, cost, latency: JSON values

A model that cannot answer raises :class:`~soulprint_pipeline.soulprint.llm.PermanentModelError`
(retrying will not help) or :class:`~soulprint_pipeline.soulprint.llm.TransientModelError` (a
later attempt may succeed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from soulprint_pipeline.soulprint.evidence import ProfileEvidence, evidence_summary
from soulprint_pipeline.soulprint.field_evidence import QuoteFinder, checked_evidence
from soulprint_pipeline.soulprint.llm import ask_for_soulprint
from soulprint_pipeline.soulprint.offline import offline_quotes, offline_soulprint
from soulprint_pipeline.soulprint.prompt import quick_pass_prompt, user_message
from soulprint_pipeline.soulprint.sampling import (
    COLUMNS,
    Sample,
    SampleLimits,
    render_sample,
    sample_conversations,
)
from soulprint_pipeline.soulprint.sections import validate_sections

if TYPE_CHECKING:
    from soulprint_pipeline.lake.store import StoredParts

BACKENDS = ("offline", "bedrock", "anthropic")
DEFAULT_MODELS = {
    "offline": "offline-heuristics",
    "bedrock": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "anthropic": "claude-haiku-4-5",
}


@dataclass(frozen=True)
class ModelSettings:
    """Who writes the soulprint (a backend of :data:`BACKENDS`), and the bounds of a call."""

    backend: str = "offline"
    model_id: str | None = None  # the backend's default when unset
    aws_region: str | None = None  # else AWS_REGION / AWS_DEFAULT_REGION
    token_budget: int = 50_000
    max_conversations: int = 50
    max_output_tokens: int = 4096
    max_retries: int = 4  # the SDK's, with exponential backoff and jitter
    timeout_seconds: float = 120.0

    @property
    def model(self) -> str:
        """The model that writes the soulprint."""
        return self.model_id or DEFAULT_MODELS[self.backend]

    def client(self) -> Any:
        """The SDK client of the backend (``AsyncAnthropicBedrock`` or ``AsyncAnthropic``)."""
        import anthropic  # only where a model is called: the SDK costs ~50 MB of memory

        if self.backend == "bedrock":
            return anthropic.AsyncAnthropicBedrock(
                aws_region=self.aws_region,
                max_retries=self.max_retries,
                timeout=self.timeout_seconds,
            )
        return anthropic.AsyncAnthropic(max_retries=self.max_retries, timeout=self.timeout_seconds)


@dataclass
class Generated:
    """A soulprint and what producing it cost (``metadata``: plain JSON values)."""

    sections: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the quotes behind the filled fields (``{"section.field": [quote]}``): the person's
    #: text, for the lake's JSON only (field_evidence.py)
    evidence: dict[str, list[str]] = field(default_factory=dict)


def generate(
    parts: StoredParts,
    settings: ModelSettings,
    on_progress: Callable[[float], None] | None = None,
) -> Generated:
    """The validated sections for the rows in ``parts``, written by ``settings.backend``.

    ``on_progress`` hears the fraction done, from 0 to 1: after each part offline, after the
    sample for a model. The offline metadata holds ``evidence``, the evidence summary (counts
    and rates, never the person's text); both hold ``field_evidence``, the counts of the
    quotes kept and dropped (the quotes themselves are in ``Generated.evidence`` only).
    """
    if settings.backend == "offline":
        return _offline(parts, settings, on_progress)
    return _ask_model(parts, settings, on_progress)


def _offline(
    parts: StoredParts, settings: ModelSettings, on_progress: Callable[[float], None] | None
) -> Generated:
    started = time.perf_counter()
    evidence = ProfileEvidence()
    for index, path in enumerate(parts.paths):
        for batch in parts.batches_of(path):
            evidence.add(batch)
        if on_progress is not None:
            on_progress((index + 1) / len(parts.paths))
    sections = validate_sections(offline_soulprint(evidence))
    # cut from the rows themselves: nothing to find them in but what they were cut from
    quotes = checked_evidence(offline_quotes(evidence, sections), sections, finder=None)
    return Generated(
        sections,
        {
            "model": settings.model,
            "prompt_version": quick_pass_prompt().version,
            "input_tokens": 0,
            "output_tokens": 0,
            "estimated_cost_usd": 0.0,
            "latency_s": round(time.perf_counter() - started, 3),
            "evidence": evidence_summary(evidence),
            "field_evidence": quotes.summary(),
        },
        quotes.quotes,
    )


def model_input(batches: Iterable[pa.RecordBatch], settings: ModelSettings) -> tuple[Sample, str]:
    """The sample of ``batches`` and the user turn a model backend sends for it (no network)."""
    limits = SampleLimits(
        token_budget=settings.token_budget, max_conversations=settings.max_conversations
    )
    sample = sample_conversations(batches, limits)
    return sample, user_message(render_sample(sample))


def _ask_model(
    parts: StoredParts, settings: ModelSettings, on_progress: Callable[[float], None] | None
) -> Generated:
    sample, user = model_input(parts.batches(COLUMNS), settings)
    if on_progress is not None:
        on_progress(0.3)  # sampled; the model call is the rest
    prompt = quick_pass_prompt()

    async def ask() -> Any:
        async with settings.client() as client:
            return await ask_for_soulprint(
                client,
                model=settings.model,
                system=prompt.system,
                user=user,
                max_tokens=settings.max_output_tokens,
            )

    answer = asyncio.run(ask())
    quotes = checked_evidence(answer.evidence, answer.sections, QuoteFinder(sample.person_texts()))
    return Generated(
        answer.sections,
        {
            "model": settings.model,
            "prompt_version": prompt.version,
            "conversations_sampled": len(sample.conversations),
            "conversations_total": sample.total_conversations,
            # periods and themes of the export, and how many the sample covers
            "sample_coverage": sample.coverage,
            "estimated_input_tokens": sample.estimated_tokens,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "estimated_cost_usd": answer.cost_usd,
            "latency_s": answer.latency_s,
            "model_calls": answer.calls,
            "retries": answer.retries,
            "repaired": answer.repaired,
            "field_evidence": quotes.summary(),
        },
        quotes.quotes,
    )

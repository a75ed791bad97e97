"""Asking Claude for the soulprint: one call, parsed and validated, one repair if needed.

The client is the anthropic SDK's (``AsyncAnthropicBedrock`` for Bedrock, ``AsyncAnthropic``
for the direct API): its own retries, with exponential backoff and jitter, absorb throttling
and transient errors; what it still raises is sorted here into :class:`PermanentModelError`
(credentials, model access, a request the model rejects: retrying will not help) and
:class:`TransientModelError` (throttling or an outage outlasting the retries: a later retry of
the step may succeed).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK costs ~50 MB of memory: imported only where a model is called
    import anthropic

from soulprint_pipeline.errors import UserSafeError
from soulprint_pipeline.soulprint.field_evidence import EVIDENCE_KEY
from soulprint_pipeline.soulprint.sections import (
    NOT_ENOUGH_DATA,
    SECTION_NAMES,
    SoulprintValidationError,
    validate_sections,
)

#: USD per million tokens (Claude Haiku 4.5, on Bedrock and the direct API).
PRICE_PER_MTOK = {"input": 1.00, "output": 5.00}
#: Low: a profile should follow the evidence, the same for the same conversations.
TEMPERATURE = 0.3

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class ModelError(UserSafeError):
    """The model could not produce a soulprint; the message is fit for the person's row."""


class PermanentModelError(ModelError):
    """Retrying will not help (credentials, access, validation)."""


class TransientModelError(ModelError):
    """Throttled or unavailable past the client's retries; a later attempt may succeed."""


class InvalidAnswerError(ModelError):
    """The model's answer was not a valid soulprint, even after a repair call."""


@dataclass
class Answer:
    """A validated soulprint and what it cost."""

    sections: dict[str, Any]
    #: the answer's evidence as given (``{"section.field": quote}``), unchecked
    evidence: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    retries: int = 0
    latency_s: float = 0.0
    repaired: bool = False

    @property
    def cost_usd(self) -> float:
        """Estimated cost of the calls, in dollars."""
        return round(
            (
                self.input_tokens * PRICE_PER_MTOK["input"]
                + self.output_tokens * PRICE_PER_MTOK["output"]
            )
            / 1_000_000,
            6,
        )


def parse_answer(text: str) -> dict[str, Any]:
    """The sections in a model's answer: code fences stripped, JSON parsed, then validated."""
    return _parse(text)[0]


def _parse(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated sections of a model's answer, and the answer's JSON object."""
    match = _FENCE.match(text)
    body = match.group(1) if match else text.strip()
    if not body.startswith("{"):  # tolerate a sentence before or after the object
        start, end = body.find("{"), body.rfind("}")
        if start == -1 or end <= start:
            raise SoulprintValidationError("the answer holds no JSON object")
        body = body[start : end + 1]
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as error:
        raise SoulprintValidationError(f"the answer is not valid JSON ({error.msg})") from None
    if not isinstance(raw, dict):
        raise SoulprintValidationError("the answer is not a JSON object")
    # the offline model may leave fields out; the model is asked for every section, and a
    # partial answer (a cut-off reply) gets the repair call rather than "not enough data"
    missing = [section for section in SECTION_NAMES if not isinstance(raw.get(section), dict)]
    if missing:
        raise SoulprintValidationError(f"the answer lacks the sections {', '.join(missing)}")
    sections = validate_sections(raw)
    if sections["identity"]["ai_name"] == NOT_ENOUGH_DATA:
        raise SoulprintValidationError("identity.ai_name: expected a creative name")
    return sections, raw


def _classify(error: anthropic.APIError) -> ModelError:
    import anthropic

    if isinstance(error, anthropic.RateLimitError):
        return TransientModelError(
            "The soulprint model was throttled (HTTP 429) and did not recover in time."
        )
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        if status >= 500:
            return TransientModelError(f"The soulprint model was unavailable (HTTP {status}).")
        reason = {
            400: "rejected the request",
            401: "refused the credentials",
            403: "denied access (is the model enabled for this account and region?)",
            404: "was not found (check the model id and region)",
        }.get(status, "refused the request")
        return PermanentModelError(f"The soulprint model {reason} (HTTP {status}).")
    return TransientModelError(
        f"The soulprint model could not be reached ({type(error).__name__})."
    )


async def ask_for_soulprint(
    client: anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock,
    *,
    model: str,
    system: str,
    user: str,
    max_tokens: int = 4096,
) -> Answer:
    """Call the model; if its answer is invalid, call once more showing it the error."""
    answer = Answer(sections={})
    messages: list[dict[str, str]] = [{"role": "user", "content": user}]
    started = time.perf_counter()
    error: SoulprintValidationError | None = None
    for attempt in (1, 2):
        text = await _call(
            client,
            answer,
            model=model,
            system=system,
            messages=messages,
            max_tokens=max_tokens,
            # this SDK's create() has no temperature parameter; Haiku 4.5 takes it in the body
            extra_body={"temperature": TEMPERATURE},
        )
        try:
            answer.sections, raw = _parse(text)
            # checked against the input by the caller, which has it; never a repair call
            answer.evidence = raw.get(EVIDENCE_KEY)
            answer.repaired = attempt == 2
            answer.latency_s = round(time.perf_counter() - started, 3)
            return answer
        except SoulprintValidationError as invalid:
            error = invalid
            messages = [
                *messages,
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That answer is not a valid soulprint: {invalid}. Reply again "
                    "with only the corrected JSON object, following the schema exactly.",
                },
            ]
    raise InvalidAnswerError(
        f"The soulprint model's answer was not a valid soulprint, twice ({error})."
    )


async def _call(client: Any, answer: Answer, **request: Any) -> str:
    import anthropic

    try:
        raw = await client.messages.with_raw_response.create(**request)
    except anthropic.APIError as error:
        raise _classify(error) from error
    message = await raw.parse()  # the async client parses asynchronously
    answer.calls += 1
    answer.retries += getattr(raw, "retries_taken", 0)
    answer.input_tokens += message.usage.input_tokens
    answer.output_tokens += message.usage.output_tokens
    return "".join(block.text for block in message.content if block.type == "text")

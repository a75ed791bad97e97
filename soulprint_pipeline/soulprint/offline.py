"""The offline model: a soulprint from the evidence alone, with no network and no key.

:func:`offline_soulprint` reads the :class:`~soulprint_pipeline.soulprint.evidence.ProfileEvidence`
once (what the person says about themselves, facts.py; the topics they write about, themes.py;
their style, from the rates) and builds the five sections from that reading, deterministically::

    sections = offline_soulprint(evidence)

The profile says what the data supports and no more: a string without evidence is
:data:`NOT_ENOUGH_DATA`, a list without evidence is empty.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.soulprint.evidence import (
    STOPWORDS,
    WEEKDAYS,
    ProfileEvidence,
    languages,
    share,
)
from soulprint_pipeline.soulprint.facts import fact_sentences, personal_facts, relationships
from soulprint_pipeline.soulprint.field_evidence import MAX_QUOTES
from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA, _cap, validate_sections
from soulprint_pipeline.soulprint.themes import (
    THEME_LABELS,
    THEME_NAMES,
    THEME_ROLES,
    THEME_USAGE,
    theme_scores,
)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _pick(options: tuple[str, ...], digest: str) -> str:
    index = int(hashlib.sha256(digest.encode()).hexdigest(), 16) % len(options)
    return options[index]


# --------------------------------------------------------------------------- the offline model


@dataclass(frozen=True)
class _Reading:
    """What the offline model reads off the evidence, shared by the section builders."""

    evidence: ProfileEvidence
    n: int  # user messages
    instructions: list[str]  # "How to respond" sentences of the newest custom instructions
    no_emoji_asked: bool
    name: str
    address: str
    location: str
    occupation: str
    relationships: list[str]
    interests: list[str]  # stated interests, the most trusted first
    preferences: list[str]  # stated preferences ("prefers concise answers")
    other_facts: list[str]  # other facts about the person, from their profile signals
    themes: list[str]  # topic themes, strongest first
    dominant: str  # the strongest theme, or ""
    languages: list[str]
    keywords: list[str]
    q_rate: float
    polite_rate: float
    emoji_rate: float
    exclaim_rate: float
    laugh_rate: float
    feeling_rate: float
    lower_rate: float
    image_rate: float
    long_rate: float
    median_len: float
    coding: bool
    research: bool

    @property
    def stated(self) -> list[str]:
        """The person's own instructions and preferences, the ones to honor first."""
        return self.instructions[:2] + self.preferences[:2]

    @property
    def who(self) -> str:
        return self.address if self.address != NOT_ENOUGH_DATA else self.name

    def theme_labels(self, count: int) -> list[str]:
        return [THEME_LABELS[theme] for theme in self.themes[:count]]


def _stated(evidence: ProfileEvidence, kind: str) -> str:
    candidate = evidence.stated.best(kind)
    return candidate.value if candidate is not None else NOT_ENOUGH_DATA


def _stated_interests(evidence: ProfileEvidence) -> list[str]:
    """Interests the person states ("I play bass guitar", "me encanta la jardinería"), the most
    trusted first; a phrase of filler words alone is no interest."""
    out = []
    for candidate in evidence.stated.all_of("interest"):
        words = candidate.value.lower().split()
        if any(word not in STOPWORDS for word in words):
            out.append(candidate.value)
    return out


def _read(evidence: ProfileEvidence) -> _Reading:
    n = evidence.user_messages
    stated = evidence.stated
    versions = stated.versions()
    about = versions[0][1] if versions else ""
    facts = fact_sentences([about, *evidence.memories])
    instructions = stated.instructions()
    name = _stated(evidence, "name")
    location = _stated(evidence, "location")
    occupation = _stated(evidence, "occupation")
    personal = personal_facts(facts, (name, location, occupation))
    preferences = [fact for fact in personal if "prefer" in fact.lower()]
    themes = [theme for theme, _ in theme_scores(evidence)]
    code_rate = share(evidence.user_code, n)
    return _Reading(
        evidence=evidence,
        n=n,
        instructions=instructions,
        no_emoji_asked=any(re.search(r"(?i)\bno emoji", s) for s in instructions + facts),
        name=name,
        address=_stated(evidence, "preferred_address"),
        interests=_stated_interests(evidence),
        location=location,
        occupation=occupation,
        relationships=_relationships(evidence, facts),
        preferences=preferences,
        other_facts=[fact for fact in personal if fact not in preferences],
        themes=themes,
        dominant=themes[0] if themes else "",
        languages=languages(evidence),
        keywords=[word for word, _ in evidence.top_keywords(40, 2 if n >= 20 else 1)],
        q_rate=share(evidence.questions, n),
        polite_rate=share(evidence.polite, n),
        emoji_rate=share(evidence.emoji_messages, n),
        exclaim_rate=share(evidence.exclaims, n),
        laugh_rate=share(evidence.laughs, n),
        feeling_rate=share(evidence.feelings, n),
        lower_rate=share(evidence.lowercase_starts, n),
        image_rate=share(evidence.user_images, n),
        long_rate=share(evidence.long_messages, n),
        median_len=evidence.user_lengths.median,
        coding="coding" in themes[:3] or code_rate >= 0.03,
        research=share(evidence.tether_quotes, max(evidence.conversations, 1)) >= 0.02,
    )


def _relationships(evidence: ProfileEvidence, facts: list[str]) -> list[str]:
    """The people and pets the person names in their profile or chats, then the ones their
    messages mention most; six at most."""
    out = [candidate.value for candidate in evidence.stated.all_of("relationship")]
    named = {value.split(" (")[0] for value in out}
    for item in relationships(evidence, facts):
        if item.split(" (")[0] not in named and item not in out:
            out.append(item)
    return out[:6]


def _traits(r: _Reading) -> list[str]:
    if not r.n:
        return []
    top = set(r.themes[:3])
    candidates = [
        ("curious", r.q_rate >= 0.25),
        ("courteous", r.polite_rate >= 0.08),
        ("expressive", r.emoji_rate >= 0.08 or r.exclaim_rate >= 0.15),
        ("technical", r.coding),
        ("multilingual", len(r.languages) >= 2),
        ("thorough", r.median_len >= 250),
        ("concise", 0 < r.median_len < 60),
        ("emotionally open", r.feeling_rate >= 0.05),
        ("playful", r.laugh_rate >= 0.03),
        ("visually minded", r.image_rate >= 0.03),
        ("research-minded", r.research),
        ("creative", "writing" in top),
        ("family-oriented", "family" in top),
        ("health-conscious", bool({"fitness", "health"} & top)),
        ("practical", bool({"planning", "career", "finance"} & top)),
        ("consistent", r.evidence.conversations >= 100),
    ]
    # without evidence, no trait: never a padded default
    return [trait for trait, holds in candidates if holds][:7]


def _soul(r: _Reading) -> dict[str, Any]:
    soul: dict[str, Any] = {"personality_traits": _traits(r)}
    if r.n:
        if r.median_len < 60:
            parts = ["Brief and to the point, in short messages"]
        elif r.median_len < 250:
            parts = ["Conversational, in a few sentences at a time"]
        else:
            parts = ["Detailed and thorough, often giving plenty of context"]
        if r.q_rate >= 0.3:
            parts.append("leads with direct questions")
        if r.long_rate >= 0.05:
            parts.append("pastes longer documents to work on")
        if r.languages:
            parts.append(f"writes mostly in {_join(r.languages[:3])}")
        soul["communication_style"] = "; ".join(parts)

        tones = []
        if r.polite_rate >= 0.08:
            tones.append("warm and courteous")
        if r.emoji_rate >= 0.08 and not r.no_emoji_asked:
            tones.append("playful, emoji-friendly")
        if r.exclaim_rate >= 0.15:
            tones.append("upbeat")
        soul["tone_preferences"] = (
            f"Responds well to a {_join(tones or ['neutral and matter-of-fact'])} tone"
        )

        formal = (r.polite_rate >= 0.15) + (r.median_len >= 150) + (r.lower_rate < 0.2)
        casual = (
            (r.emoji_rate >= 0.1)
            + (r.lower_rate >= 0.5)
            + (r.median_len < 40)
            + (r.laugh_rate >= 0.03)
        )
        if formal - casual >= 2:
            soul["formality_level"] = "Formal: polite, complete sentences"
        elif casual - formal >= 1:
            soul["formality_level"] = "Casual: relaxed, informal messages"
        else:
            soul["formality_level"] = "Semi-formal: friendly but clear"

    if r.stated:
        soul["boundaries"] = "Stated preferences to respect: " + "; ".join(
            item.rstrip(".") for item in r.stated
        )

    if r.n and r.laugh_rate >= 0.02:
        soul["humor_style"] = "Light and playful; laughs easily in chat"
    elif r.n and r.emoji_rate >= 0.08:
        soul["humor_style"] = "Light, shown through emoji more than jokes"
    elif r.n >= 20:
        soul["humor_style"] = "Mostly earnest; humor rarely shows in the messages"

    if r.n and r.feeling_rate >= 0.05:
        soul["emotional_patterns"] = "Open about feelings; shares stress, worries and excitement"
    elif r.n >= 20:
        soul["emotional_patterns"] = "Reserved; focuses on tasks more than feelings"
    return soul


def _identity(r: _Reading, soul: Mapping[str, Any]) -> dict[str, Any]:
    traits: list[str] = soul["personality_traits"]
    digest = "|".join([str(r.n), r.dominant, *r.keywords[:5], *traits])
    ai_name = _pick(THEME_NAMES[r.dominant], digest)
    identity: dict[str, Any] = {"ai_name": ai_name}
    if r.n:
        adjective = traits[0].split()[0].split("-")[0].capitalize()
        identity["archetype"] = f"{adjective} {THEME_ROLES[r.dominant]}"
    else:
        identity["archetype"] = "Blank Slate"
    if traits:
        identity["vibe"] = _cap(_join(traits[:3]))

    if r.no_emoji_asked:
        identity["emoji_style"] = "None: the person asked for no emoji"
    elif r.n >= 10 and r.emoji_rate == 0:
        identity["emoji_style"] = "No emoji; keep replies text-only"
    elif r.n and r.emoji_rate < 0.05:
        identity["emoji_style"] = "Rare; only mirror emoji when the person uses them"
    elif r.n and r.emoji_rate < 0.2:
        identity["emoji_style"] = "Occasional emoji to match the person's warmth"
    elif r.n:
        identity["emoji_style"] = "Frequent, expressive emoji"

    if r.n:
        hello = "Hello" if str(soul.get("formality_level", "")).startswith("Formal") else "Hey"
        name = f" {r.who}" if r.who != NOT_ENOUGH_DATA else ""
        if r.dominant:
            follow = f"What's on your mind, {THEME_LABELS[r.dominant]} or something new?"
        else:
            follow = "What are we working on today?"
        identity["signature_greeting"] = f"{hello}{name}! {ai_name} here. {follow}"
    return identity


def _user(r: _Reading) -> dict[str, Any]:
    evidence = r.evidence
    # what they say they do, then the topics their messages keep coming back to; never a raw
    # frequent word (fillers and polite closings are frequent too)
    interests: list[str] = []
    for interest in r.interests + r.theme_labels(4):
        if interest.lower() not in (item.lower() for item in interests):
            interests.append(interest)
    interests = interests[:10]

    context: list[str] = []
    if r.other_facts:
        context.append("Known from their profile: " + "; ".join(r.other_facts[:4]))
    if r.n:
        span = ""
        if evidence.first_user_at is not None and evidence.last_user_at is not None:
            first, last = _year(evidence.first_user_at), _year(evidence.last_user_at)
            span = f" from {first} to {last}" if first != last else f" in {first}"
        about = f", mostly about {_join(r.theme_labels(3))}" if r.themes else ""
        context.append(
            f"{_plural(evidence.conversations, 'conversation')} and"
            f" {_plural(r.n, 'message')}{span}{about}"
        )
        if sum(evidence.hours):
            hour = max(range(24), key=lambda h: (evidence.hours[h], -h))
            day = max(range(7), key=lambda d: (evidence.weekdays[d], -d))
            context.append(f"most active around {hour:02d}:00 UTC, busiest on {WEEKDAYS[day]}s")
    return {
        "name": r.name,
        "location": r.location,
        "occupation": r.occupation,
        "relationships": r.relationships,
        "interests": interests,
        "life_context": "; ".join(context) if context else NOT_ENOUGH_DATA,
        "preferred_address": r.who,
    }


def _agents(r: _Reading) -> dict[str, Any]:
    agents: dict[str, Any] = {}
    stated = " ".join(r.stated).lower()
    multilingual = len(r.languages) >= 2
    if r.n:
        if r.median_len < 60 or "concise" in stated:
            style = "Lead with the answer in a few lines, then offer more if useful"
        elif r.median_len < 250:
            style = "Clear, well-structured answers of moderate length"
        else:
            style = "Thorough, structured answers that engage with all the context"
        if "bullet" in stated:
            style += "; bullet points welcome"
        agents["response_style"] = style

    rules = [
        f"Follow the person's standing instruction: {instruction.rstrip('.')}"
        for instruction in r.instructions[:3]
    ]
    if r.n:
        candidates = [
            (f"Reply in the language of the message ({_join(r.languages[:4])})", multilingual),
            ("Give runnable code in fenced blocks and explain the why briefly", r.coding),
            ("Keep answers short and skip long preambles", r.median_len < 60),
            ("Answer the question asked first, then add context", r.q_rate >= 0.25),
            ("Match the person's courtesy with a warm tone", r.polite_rate >= 0.08),
            ("Acknowledge feelings before jumping to solutions", r.feeling_rate >= 0.05),
            ("Cite sources when stating facts from the web", r.research),
            ("Remember the people and pets the person mentions by name", bool(r.relationships)),
        ]
        rules += [rule for rule, holds in candidates if holds]  # no padded defaults
    agents["behavioral_rules"] = rules[:7]

    if r.n:
        adapt = []
        if multilingual:
            adapt.append(f"switch between {_join(r.languages[:4])} as the person does")
        if r.coding:
            adapt.append("go technical and precise for code")
        if r.feeling_rate >= 0.05 or {"family", "health"} & set(r.themes):
            adapt.append("slow down and be supportive for personal topics")
        agents["context_adaptation"] = _cap(
            _join(adapt or ["match the length and tone of each message"])
        )

    remember = []
    if r.name != NOT_ENOUGH_DATA:
        remember.append(f"their name ({r.name})")
    if r.occupation != NOT_ENOUGH_DATA:
        remember.append(f"their work ({r.occupation})")
    if r.location != NOT_ENOUGH_DATA:
        remember.append(f"where they live ({r.location})")
    if r.relationships:
        remember.append(f"the people and pets in their life ({', '.join(r.relationships[:4])})")
    if r.themes:
        remember.append(f"ongoing interests ({_join(r.theme_labels(3))})")
    if remember:
        agents["memory_directives"] = (
            "Remember " + "; ".join(remember) + "; refer back to them naturally"
        )

    do_not = [
        instruction
        for instruction in r.instructions
        if re.match(r"(?i)(no|don't|do not|never|avoid|stop)\b", instruction)
    ]
    if r.n:
        if r.no_emoji_asked or (r.n >= 20 and r.emoji_rate == 0):
            do_not.append("Do not use emoji")
        if r.median_len < 60:
            do_not.append("Do not pad answers with long introductions")
        if multilingual:
            do_not.append("Do not switch away from the language the person wrote in")
        if r.polite_rate >= 0.08:
            do_not.append("Do not be curt or dismissive")
    agents["do_not"] = do_not[:7]
    return agents


def _tools(r: _Reading) -> dict[str, Any]:
    evidence = r.evidence
    usage: list[str] = []
    capabilities: list[str] = []
    signals = [
        (r.coding, "coding and debugging", "code writing and debugging"),
        (evidence.execution_outputs > 0, "data analysis with code execution", "code execution"),
        (r.research, "research with web browsing", "web browsing"),
        (evidence.user_images > 0, "questions about images and photos", "image understanding"),
        (evidence.generated_images > 0, "image generation", "image generation"),
        (
            len(r.languages) >= 2 or "languages" in r.themes,
            "",
            "translation",
        ),
        (
            r.long_rate >= 0.02,
            "summarizing and editing long documents",
            "long-document summarization",
        ),
        (evidence.memory_rows > 0, "", "memory"),
    ]
    for holds, use, capability in signals:
        if holds:
            if use:
                usage.append(use)
            capabilities.append(capability)
    for theme in r.themes:
        if THEME_USAGE[theme] not in usage:
            usage.append(THEME_USAGE[theme])

    outputs = [preference.rstrip(".") for preference in r.preferences[:2]]
    if r.coding:
        outputs.append("fenced code blocks with short explanations")
    if r.n and not outputs:
        outputs.append(
            "short paragraphs" if r.median_len < 250 else "structured answers with headings"
        )

    tools: dict[str, Any] = {
        "likely_usage": usage[:8],
        "capabilities_emphasis": capabilities,
    }
    if outputs:
        tools["output_preferences"] = _cap("; ".join(outputs))
    answers = evidence.assistant_lengths
    if answers.count:
        median = answers.median
        if median < 400:
            depth = "Brief answers"
        elif median < 1500:
            depth = "Moderate depth"
        else:
            depth = "In-depth, detailed answers"
        tools["depth_preference"] = f"{depth} (answers so far run about {int(median)} characters)"
    return tools


def offline_soulprint(evidence: ProfileEvidence) -> dict[str, dict[str, Any]]:
    """A deterministic soulprint computed from the evidence alone (no network, no model).

    Same evidence, same sections. Style fields come from the person's own messages (length,
    questions, politeness, emoji, laughter, feelings, languages), interests from what they say
    they do and the topics their messages keep coming back to (never a raw frequent word),
    usage from content types (code, images, browsing, code execution) and topics, depth from
    the assistant's answer lengths, the AI's name from a themed list, picked by a hash of the
    evidence. Name, location, occupation, relationships and standing instructions are what
    the person states (signals.py): the newest custom instructions first, then memories, then
    their chats. Without evidence a field is ``NOT_ENOUGH_DATA`` or ``[]``, never a padded
    default (the validation fills what a builder leaves out). The result passes
    :func:`validate_sections`.
    """
    reading = _read(evidence)
    soul = _soul(reading)
    raw = {
        "soul": soul,
        "identity": _identity(reading, soul),
        "user": _user(reading),
        "agents": _agents(reading),
        "tools": _tools(reading),
    }
    return validate_sections(raw)


def _year(micros: int) -> int:
    return int(pc.year(pa.scalar(micros, pa.timestamp("us", tz="UTC"))).as_py())


def offline_quotes(evidence: ProfileEvidence, sections: Mapping[str, Any]) -> dict[str, list[str]]:
    """The quotes behind the fields :func:`offline_soulprint` filled from what the person
    states (``{"section.field": [quote]}``): each statement's sentence as written, in custom
    instructions, a memory or a chat. Fields inferred from rates and topics have none."""
    stated = evidence.stated
    user, agents = sections["user"], sections["agents"]
    quotes: dict[str, list[str]] = {}

    def add(path: str, quote: str) -> None:
        kept = quotes.setdefault(path, [])
        if quote not in kept and len(kept) < MAX_QUOTES:  # the most trusted first
            kept.append(quote)

    for kind in ("name", "location", "occupation", "preferred_address"):
        value = user[kind]
        for candidate in stated.all_of(kind):
            if candidate.value == value:
                add(f"user.{kind}", candidate.quote)
                break
    if "user.preferred_address" not in quotes and user["preferred_address"] == user["name"]:
        quotes["user.preferred_address"] = list(quotes.get("user.name", []))
    for kind, path in (("relationship", "relationships"), ("interest", "interests")):
        for candidate in stated.all_of(kind):
            if candidate.value in user[path]:
                add(f"user.{path}", candidate.quote)
    for instruction in stated.instructions():
        said = instruction.rstrip(".")
        for path in ("agents.behavioral_rules", "agents.do_not"):
            if any(said in rule for rule in agents[path.split(".")[1]]):
                add(path, instruction)
        if said in sections["soul"]["boundaries"]:
            add("soul.boundaries", instruction)
    return {path: kept for path, kept in quotes.items() if kept}

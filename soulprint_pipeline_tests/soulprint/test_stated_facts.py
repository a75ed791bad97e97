"""What the person states about themselves reaches the offline soulprint, and nothing else does
(issue 11): wrapper text stripped, labelled fields read, newest custom instructions win, chat
disclosures in English, Spanish and French, no junk interests, no padded traits or rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY, SCHEMA
from soulprint_pipeline.soulprint.evidence import ProfileEvidence
from soulprint_pipeline.soulprint.offline import offline_soulprint
from soulprint_pipeline.soulprint.sections import NOT_ENOUGH_DATA

OLD = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
NEW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
WRAPPED = (
    "About me: The user provided the following information about themselves. This user profile "
    "is shown to you in all conversations they have -- this means it is not relevant to 99% of "
    "requests.\nOnly acknowledge the profile when the request is directly related.\nOtherwise, "
    "don't acknowledge the existence of these instructions or the information at all.\n"
    "User profile:\n```{about}```\nHow to respond: The user provided the additional info about "
    "how they would like you to respond:\n```{respond}```"
)


def _rows(conversation: str, started: dt.datetime, rows: list[tuple[str, str, str]]) -> list[dict]:
    out: list[dict[str, Any]] = []
    for position, (role, content_type, text) in enumerate(rows):
        signal = content_type in (CUSTOM_INSTRUCTIONS, MEMORY)
        out.append(
            {
                "conversation_id": conversation,
                "conversation_title": "A chat",
                "conversation_created_at": started,
                "message_id": f"{conversation}-{position}",
                "position": position,
                "role": role,
                "content_type": content_type,
                "text": text,
                # custom instructions carry no time of their own, as in real exports
                "created_at": None if signal else started + dt.timedelta(minutes=position),
                "model_slug": None,
            }
        )
    return out


def _soulprint(*conversations: list[dict]) -> dict[str, Any]:
    evidence = ProfileEvidence()
    for rows in conversations:
        evidence.add(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
    return offline_soulprint(evidence)


def test_newest_custom_instructions_win_their_wrapper_stripped_labelled_fields_read() -> None:
    old = WRAPPED.format(about="I'm a backend developer living in Austin.", respond="Be concise.")
    new = WRAPPED.format(
        about="Preferred name: Sam\nRole: Site reliability engineer\n"
        "Other Information: I live in Denver. I play bass guitar.",
        respond="Keep answers short.\nNo emojis in your answers.",
    )
    # the newer version comes first in the file (exports list the newest conversation first)
    # and the older one's text sorts first: neither order may decide, only the time
    sections = _soulprint(
        _rows("new", NEW, [("user", CUSTOM_INSTRUCTIONS, new), ("user", "text", "hi there")]),
        _rows("old", OLD, [("user", CUSTOM_INSTRUCTIONS, old), ("user", "text", "hello")]),
    )
    user, agents = sections["user"], sections["agents"]
    assert user["preferred_address"] == "Sam"
    assert user["occupation"] == "Site reliability engineer"
    assert user["location"] == "Denver"
    assert "bass guitar" in user["interests"]
    everything = str(sections)
    assert "Austin" not in everything and "backend developer" not in everything
    assert "acknowledge" not in everything and "```" not in everything
    assert any("No emojis" in rule for rule in agents["behavioral_rules"])
    assert any("No emojis" in rule for rule in agents["do_not"])


def test_memories_and_one_chat_mention_reach_the_right_fields_in_three_languages() -> None:
    memory = (
        "1. [2025-03-01]. User's name is Oliver Pemberton.\n2. [2025-03-02]. The user is an SRE."
    )
    sections = _soulprint(
        _rows(
            "c1",
            NEW,
            [
                ("assistant", MEMORY, memory),
                ("user", "text", "jaja mi hermano Diego se casa en mayo, ideas porfa"),
                ("user", "text", "estoy aprendiendo fotografía, qué apertura uso?"),
                ("user", "text", "je me suis mise à l'escalade, comment progresser ?"),
                ("user", "text", "Vivo en Sevilla desde hace dos años."),
            ],
        )
    )
    user = sections["user"]
    assert user["name"] == "Oliver Pemberton"
    assert user["occupation"] == "SRE"
    assert user["location"] == "Sevilla"
    assert "Diego (brother)" in user["relationships"]
    assert {"fotografía", "escalade"} <= set(user["interests"])


def test_no_junk_interests_no_feelings_from_politeness_no_padded_traits() -> None:
    chatter = [
        "lol pls thx haha ok",
        "Kind regards, I would be most grateful. Many thanks.",
        "porfa necesito ayuda jaja",
        "merci stp, bon du coup",
    ] * 5
    sections = _soulprint(_rows("c1", NEW, [("user", "text", text) for text in chatter]))
    junk = {"lol", "pls", "thx", "haha", "regards", "grateful", "porfa", "necesito", "stp"}
    assert not junk & set(sections["user"]["interests"])
    assert sections["user"]["interests"] == []
    assert "Open about feelings" not in sections["soul"].get("emotional_patterns", "")
    traits = sections["soul"]["personality_traits"]
    assert not {"inquisitive", "self-directed", "pragmatic"} & set(traits)
    rules = sections["agents"]["behavioral_rules"]
    assert "Be honest about uncertainty instead of guessing" not in rules
    assert sections["user"]["name"] == NOT_ENOUGH_DATA


def test_stated_facts_beat_inference_and_newer_statements_beat_older() -> None:
    cooking = "What can I cook for dinner with a sourdough bread and a vegetarian risotto recipe?"
    older_memory = (
        "1. [2023-02-01]. User lives in Aberdeen.\n2. [2023-02-01]. User works as a doctor."
    )
    newer_memory = (
        "1. [2023-02-01]. User lives in Aberdeen.\n2. [2023-02-01]. User works as a doctor.\n"
        "3. [2025-05-20]. User lives in Bristol.\n4. [2025-05-20]. User works as a midwife."
    )
    sections = _soulprint(
        _rows("a", OLD, [("assistant", MEMORY, older_memory)] + [("user", "text", cooking)] * 9),
        _rows(
            "b",
            NEW,
            [("assistant", MEMORY, newer_memory), ("user", "text", "I have taken up chess.")],
        ),
    )
    user = sections["user"]
    # a newer memory beats an older one, even when an old one is listed in the newer snapshot
    assert user["location"] == "Bristol" and user["occupation"] == "midwife"
    # what the person says they do comes before the topic their messages are about
    assert user["interests"][0] == "chess" and "cooking" in user["interests"]


def test_an_instruction_on_the_line_after_how_to_respond_is_read() -> None:
    custom = "About me: I live in Denver.\nHow to respond:\nAnswer in bullet points."
    sections = _soulprint(_rows("c", NEW, [("user", CUSTOM_INSTRUCTIONS, custom)]))
    assert any("Answer in bullet points" in rule for rule in sections["agents"]["behavioral_rules"])
    assert sections["user"]["location"] == "Denver"


def test_generic_words_make_no_theme_and_few_messages_no_padded_style() -> None:
    generic = "Can you make a list of the error in this file and draft an email about it?"
    sections = _soulprint(_rows("c", NEW, [("user", "text", generic)] * 10))
    assert sections["user"]["interests"] == []
    assert not {"programming", "writing"} & set(sections["user"]["interests"])
    assert "Writing Partner" not in sections["identity"]["archetype"]
    assert "Code Companion" not in sections["identity"]["archetype"]
    # ten messages: no trait or rule without the evidence for it
    assert "creative" not in sections["soul"]["personality_traits"]
    assert "technical" not in sections["soul"]["personality_traits"]
    assert not any("code" in rule.lower() for rule in sections["agents"]["behavioral_rules"])

"""Planted-persona exports: synthetic ChatGPT exports of invented people whose facts are known.

Each :class:`Persona` is a person with a language and a writing style, and facts placed the way
real exports hold them: in custom instructions (the older free-text form and the newer
labelled-field form, "Preferred name:", "Role:", wrapped in ChatGPT's own boilerplate, with an
older version holding stale values), in saved memories (snapshots that grow over time), and
mentioned once in one or two chats only. The bulk of each export comes from the generator in
:mod:`soulprint_pipeline.testing.synthetic`; a persona's conversations swap in its own
messages, instructions and memories::

    truth = write_persona_export(PERSONAS[0], "out/sam.json", conversations=2000)
    truth.facts                                   # the planted facts, where each one was put

Everything here is invented: no persona is a real person. The same persona, conversation count
and seed always write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass, field
from typing import Any

from soulprint_pipeline.testing.synthetic import _Conversation, _Generator, _Sink
from soulprint_pipeline.testing.truth import ExportTruth

__all__ = [
    "FIELDS",
    "PERSONAS",
    "SOURCES",
    "Fact",
    "Persona",
    "PersonaTruth",
    "write_persona_export",
]

#: Where a planted fact lives in the export.
SOURCES = ("custom_instructions", "memory", "chat")
#: The kinds of fact, and the soulprint fields where each one belongs ("section.field").
FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("user.name",),
    "preferred_address": ("user.preferred_address",),
    "location": ("user.location",),
    "occupation": ("user.occupation",),
    "relationship": ("user.relationships",),
    "interest": ("user.interests",),
    "instruction": ("agents.behavioral_rules", "agents.do_not", "soul.boundaries"),
}

# ChatGPT's own wrapper around custom instructions, as exports hold it.
_PROFILE_WRAPPER = (
    "The user provided the following information about themselves. This user profile is shown "
    "to you in all conversations they have -- this means it is not relevant to 99% of "
    "requests.\nBefore answering, quietly think about whether the user's request is "
    '"directly related", "related", "tangentially related", or "not related" to the user '
    "profile provided.\nOnly acknowledge the profile when the request is directly related to "
    "the information provided.\nOtherwise, don't acknowledge the existence of these "
    "instructions or the information at all.\nUser profile:\n```{}```"
)
_RESPOND_WRAPPER = (
    "The user provided the additional info about how they would like you to respond:\n```{}```"
)


@dataclass(frozen=True)
class Fact:
    """One planted fact: its kind (a :data:`FIELDS` key), its value, where it was put."""

    kind: str
    value: str
    source: str
    accept: tuple[str, ...] = ()  # other spellings that count as the same value

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every spelling that counts as this fact."""
        return (self.value, *self.accept)


@dataclass(frozen=True)
class Persona:
    """An invented person, and how their export is written.

    ``custom_instructions`` are the versions, oldest first, each ``(about, respond)``; the
    newest holds the current values, the older ones the ``stale`` values that must never win.
    ``memories`` are added to the saved memories one after another over the export's time;
    each of ``plants`` is said in one or two chats only.
    """

    key: str
    language: str
    style: str
    custom_instructions: tuple[tuple[str, str], ...]
    memories: tuple[str, ...]
    plants: tuple[str, ...]
    messages: tuple[str, ...]  # the persona's everyday messages (no planted fact in them)
    fillers: tuple[str, ...]  # chat tics sprinkled into them
    facts: tuple[Fact, ...]
    stale: tuple[str, ...]
    topics: tuple[str, ...]  # what the everyday messages are about: interests with support


PERSONAS: tuple[Persona, ...] = (
    Persona(
        key="sam_en",
        language="English (US)",
        style="casual, lowercase, lol/pls/thx, emoji",
        custom_instructions=(
            (
                "I'm a backend developer living in Austin. I like board games.",
                "Be concise.",
            ),
            (
                "Preferred name: Sam\nRole: Site reliability engineer\n"
                "Other Information: I live in Denver. I play bass guitar in a garage band.",
                "Keep answers short and skip the small talk.\nNo emojis in your answers.",
            ),
        ),
        memories=(
            "User's name is Samantha Reyes.",
            "User is training for a half marathon.",
            "User's partner is named Jordan.",
        ),
        plants=(
            "lol my sister Leah is flying in on friday, what should we do in town for a weekend?",
            "i started pottery classes last month, pls give me tips for centering clay",
        ),
        messages=(
            "my pager went off at 3am again, the kubernetes node pool keeps flapping",
            "can u help me write a postmortem for the redis outage",
            "how do i set up prometheus alerts that don't page for nothing",
            "explain terraform state locking like i'm tired",
            "what's a good tempo run for half marathon training",
            "our on-call rotation is brutal, how do other teams split it",
            "write a bash one-liner to find the biggest log files",
            "what should i eat before a long run on sunday",
            "is grafana loki worth it vs elasticsearch for logs",
            "how do i explain an SLO budget to my product manager",
        ),
        fillers=("lol", "pls", "thx", "haha", "😅", "🙏", "ok so", "ngl"),
        facts=(
            Fact("preferred_address", "Sam", "custom_instructions"),
            Fact(
                "occupation",
                "Site reliability engineer",
                "custom_instructions",
                ("SRE", "site reliability"),
            ),
            Fact("location", "Denver", "custom_instructions"),
            Fact("interest", "bass guitar", "custom_instructions", ("bass",)),
            Fact("instruction", "no emoji", "custom_instructions", ("emoji",)),
            Fact("name", "Samantha Reyes", "memory", ("Samantha",)),
            Fact("interest", "half marathon", "memory", ("running", "marathon")),
            Fact("relationship", "Jordan", "memory"),
            Fact("relationship", "Leah", "chat"),
            Fact("interest", "pottery", "chat"),
        ),
        stale=("Austin", "backend developer", "board games"),
        topics=("kubernetes", "site reliability", "running", "programming", "devops", "fitness"),
    ),
    Persona(
        key="lucia_es",
        language="Spanish",
        style="warm, informal, porfa/jaja, exclamations",
        custom_instructions=(
            (
                "Me llamo Lucía Fernández. Vivo en Madrid y trabajo como auxiliar de farmacia.",
                "Responde siempre en español.",
            ),
            (
                "Me llamo Lucía Fernández. Vivo en Sevilla y trabajo como enfermera pediátrica. "
                "Me encanta la jardinería.",
                "Responde siempre en español.\nUsa un tono cercano.",
            ),
        ),
        memories=(
            "User has a dog named Canela.",
            "User is learning to play the ukulele.",
            "User prefers recipes without pork.",
        ),
        plants=(
            "jaja mi hermano Diego se casa en mayo y no sé qué regalarle, ideas porfa",
            "estoy aprendiendo fotografía, qué apertura uso para retratos?",
        ),
        messages=(
            "porfa ayúdame a organizar mis turnos de noche en el hospital",
            "necesito una receta rápida para la cena, algo con garbanzos",
            "qué acordes fáciles hay para empezar con el ukelele?",
            "cómo le explico a un niño de seis años que le van a poner una vacuna?",
            "necesito ideas para plantar tomates en el balcón",
            "cuánto hay que regar las suculentas en verano?",
            "porfa dame un plan para dormir mejor después del turno de noche",
            "necesito un correo para pedir cambio de turno a mi supervisora",
            "qué paseos bonitos hay para hacer con un perro por la tarde?",
        ),
        fillers=("porfa", "jaja", "gracias!!", "necesito", "vale", "bueno"),
        facts=(
            Fact("name", "Lucía Fernández", "custom_instructions", ("Lucía", "Lucia")),
            Fact("location", "Sevilla", "custom_instructions", ("Seville",)),
            Fact(
                "occupation",
                "enfermera pediátrica",
                "custom_instructions",
                ("enfermera", "nurse"),
            ),
            Fact("interest", "jardinería", "custom_instructions", ("gardening", "jardin")),
            Fact("instruction", "español", "custom_instructions", ("spanish",)),
            Fact("relationship", "Canela", "memory"),
            Fact("interest", "ukulele", "memory", ("ukelele",)),
            Fact("relationship", "Diego", "chat"),
            Fact("interest", "fotografía", "chat", ("photography", "fotografia")),
        ),
        stale=("Madrid", "auxiliar de farmacia"),
        topics=(
            "nursing",
            "enfermería",
            "cooking",
            "cocina",
            "gardening",
            "jardinería",
            "sleep",
            "health",
            "family",
            "ukulele",
            "music",
            "languages",
        ),
    ),
    Persona(
        key="oliver_gb",
        language="English (GB)",
        style="formal, long sentences, Kind regards / many thanks / grateful",
        custom_instructions=(
            (
                "I work as a paralegal in Manchester.",
                "Please use British spelling.",
            ),
            (
                "Preferred name: Oliver\nRole: Solicitor\n"
                "Other Information: Based in Leeds. I keep bees at an allotment.",
                "Please use British spelling.\nAlways state your assumptions.",
            ),
        ),
        memories=(
            "User's full name is Oliver Pemberton.",
            "User's wife is called Harriet.",
            "User is a keen birdwatcher.",
        ),
        plants=(
            "My daughter Imogen starts university in October; could you suggest a budget for "
            "her first term? Kind regards",
            "I have recently taken up rowing and would be grateful for a beginner's plan.",
        ),
        messages=(
            "Could you kindly review the wording of this clause on termination notice periods?",
            "I would be most grateful for a summary of the limitation periods for contract claims.",
            "Please draft a courteous letter to a client chasing an outstanding invoice.",
            "Many thanks. Could you now suggest a more concise version of the second paragraph?",
            "What would be a sensible way to organise my case files for the coming quarter?",
            "I should be grateful if you could explain the difference between a lease and a "
            "licence.",
            "Could you recommend a good field guide to British waders?",
            "Please suggest a planting scheme for bee-friendly borders at the allotment.",
        ),
        fillers=("Kind regards", "Many thanks", "I would be grateful", "Best wishes", "Regards"),
        facts=(
            Fact("preferred_address", "Oliver", "custom_instructions"),
            Fact("occupation", "Solicitor", "custom_instructions"),
            Fact("location", "Leeds", "custom_instructions"),
            Fact("interest", "beekeeping", "custom_instructions", ("bees", "keep bees")),
            Fact("instruction", "British spelling", "custom_instructions"),
            Fact("name", "Oliver Pemberton", "memory"),
            Fact("relationship", "Harriet", "memory"),
            Fact("interest", "birdwatching", "memory", ("birdwatcher", "birds")),
            Fact("relationship", "Imogen", "chat"),
            Fact("interest", "rowing", "chat"),
        ),
        stale=("Manchester", "paralegal"),
        topics=("law", "legal", "writing", "birds", "gardening", "career"),
    ),
    Persona(
        key="claire_fr",
        language="French",
        style="friendly, medium length, merci/stp",
        custom_instructions=(
            (
                "Je m'appelle Claire Dubois. Je suis professeure de physique et j'habite à "
                "Grenoble.",
                "Réponds en français.",
            ),
            (
                "Je m'appelle Claire Dubois. Je suis professeure de physique et j'habite à "
                "Lyon. J'adore la randonnée en montagne.",
                "Réponds en français.\nTutoie-moi.",
            ),
        ),
        memories=(
            "User has a cat named Moustache.",
            "User sings in a choir.",
            "User is vegetarian.",
        ),
        plants=(
            "ma fille Inès a perdu sa première dent, tu as une idée de mot de la petite souris ?",
            "je me suis mise à l'escalade, comment progresser en bloc quand on débute ?",
        ),
        messages=(
            "tu peux m'aider à préparer un cours sur la loi d'Ohm pour mes élèves de seconde ?",
            "j'ai besoin d'un exercice corrigé sur la chute libre, merci",
            "comment expliquer la réfraction avec une expérience simple en classe ?",
            "une idée de recette végétarienne rapide pour ce soir stp",
            "quels exercices de respiration avant une répétition de chorale ?",
            "aide-moi à corriger ce barème de contrôle sur l'énergie cinétique",
            "quel itinéraire de randonnée facile autour du Vercors ce week-end ?",
            "comment motiver une classe fatiguée en fin de trimestre ?",
        ),
        fillers=("merci", "stp", "bon", "du coup", "bisous", "😊"),
        facts=(
            Fact("name", "Claire Dubois", "custom_instructions", ("Claire",)),
            Fact("location", "Lyon", "custom_instructions"),
            Fact(
                "occupation",
                "professeure de physique",
                "custom_instructions",
                ("physics teacher", "professeure"),
            ),
            Fact("interest", "randonnée", "custom_instructions", ("hiking", "randonnee")),
            Fact("instruction", "français", "custom_instructions", ("french",)),
            Fact("relationship", "Moustache", "memory"),
            Fact("interest", "choir", "memory", ("chorale", "singing", "chant")),
            Fact("relationship", "Inès", "chat", ("Ines",)),
            Fact("interest", "escalade", "chat", ("climbing",)),
        ),
        stale=("Grenoble",),
        topics=(
            "physics",
            "physique",
            "teaching",
            "enseignement",
            "cooking",
            "cuisine",
            "music",
            "hiking",
            "languages",
        ),
    ),
)


@dataclass
class PersonaTruth:
    """What was planted in one persona's export, and where."""

    persona: Persona
    conversations: int
    export: ExportTruth
    plant_conversations: dict[str, list[int]] = field(default_factory=dict)  # plant -> indices

    @property
    def facts(self) -> tuple[Fact, ...]:
        """The planted facts."""
        return self.persona.facts


class _PersonaConversation(_Conversation):
    """A conversation of the persona: its messages, its custom instructions and memories."""

    gen: _PersonaGenerator

    def __init__(self, gen: _PersonaGenerator, *args: Any, **kwargs: Any) -> None:
        super().__init__(gen, *args, **kwargs)
        self.users = 0
        self.started = self.clock

    def system_node(self, parent: str) -> str:
        tip = super().system_node(parent)
        if self.gen.kind == "normal" and self.gen.instructions_now() not in self.gen.written:
            # every version reaches the export at least once, however small the export
            tip = self.custom_instructions(tip)
        if self.gen.kind == "normal" and len(self.gen.memories_now()) not in self.gen.snapshots:
            tip = self.model_context(tip)  # and every memory snapshot
        return tip

    def custom_instructions(self, parent: str) -> str:
        about, respond = self.gen.instructions_now()
        self.gen.written.add((about, respond))
        return self.instructions_node(
            parent,
            _PROFILE_WRAPPER.format(about),
            _RESPOND_WRAPPER.format(respond),
            about_user=about,
            text_chars=900,
        )

    def model_context(self, parent: str) -> str:
        memories = self.gen.memories_now()
        self.gen.snapshots.add(len(memories))
        if not memories:
            return parent
        day = dt.datetime.fromtimestamp(self.started, dt.UTC).date().isoformat()
        return self.context_node(
            parent, [f"{i}. [{day}]. {memory}" for i, memory in enumerate(memories, 1)]
        )

    def memory_write(self, parent: str) -> str:
        # the bulk generator's memory writes hold its own invented facts: not this person's
        return self.answer(parent)

    def user(self, parent: str | None, paste: bool = False) -> str:
        rng = self.rng
        self.users += 1
        plant = self.gen.plant_now() if self.users == 1 else None
        if plant is None and (paste or rng.random() < 0.15):
            return super().user(parent, paste)
        t = self.tick(20.0, 1800.0)
        text = plant if plant is not None else self.gen.everyday_message()
        content = {"content_type": "text", "parts": [text]}
        message = self.message("user", content, self.user_meta(), t=t)
        return self.add(parent, message, text_chars=len(text)).id


class _PersonaGenerator(_Generator):
    conversation_class = _PersonaConversation

    def __init__(self, persona: Persona, conversations: int, seed: int) -> None:
        super().__init__(f"{persona.key}:{seed}")
        self.persona = persona
        self.total = conversations
        picker = random.Random(f"{persona.key}:{seed}:plants")
        self.plants: dict[int, str] = {}
        self.kind = "normal"  # of the conversation being written
        self.written: set[tuple[str, str]] = set()  # custom-instruction versions written
        self.snapshots: set[int] = set()  # memory snapshots written (by their size)
        self.plant_conversations: dict[str, list[int]] = {}
        free = [i for i in range(8, conversations) if i not in (2, 4, 6)]
        for number, plant in enumerate(persona.plants):
            # the first plant in one chat, the next in two, and so on
            where = picker.sample(free, 1 + number % 2)
            for index in where:
                free.remove(index)
                self.plants[index] = plant
            self.plant_conversations[plant] = sorted(where)

    @property
    def current(self) -> int:
        return self.index - 1  # write_conversation counts a conversation before building it

    def age(self) -> float:
        """How far into the person's history the current conversation is: 0 oldest, 1 newest
        (an export lists the newest conversation first)."""
        return 1.0 - self.current / max(self.total, 1)

    def instructions_now(self) -> tuple[str, str]:
        versions = self.persona.custom_instructions
        # the newest version was set halfway through the export's time
        return versions[-1] if self.age() >= 0.5 else versions[0]

    def memories_now(self) -> list[str]:
        memories = self.persona.memories
        count = sum(1 for i in range(len(memories)) if self.age() >= 0.15 + 0.6 * i / len(memories))
        return list(memories[:count])

    def plant_now(self) -> str | None:
        return self.plants.get(self.current)

    def everyday_message(self) -> str:
        rng = self.rng
        persona = self.persona
        text = rng.choice(persona.messages)
        if rng.random() < 0.5:
            text = f"{rng.choice(persona.fillers)} {text}"
        if rng.random() < 0.4:
            text = f"{text} {rng.choice(persona.fillers)}"
        return text

    def pick_kind(self, giant: bool) -> str:
        # a planted chat is one the reader keeps
        self.kind = "normal" if self.index in self.plants else super().pick_kind(giant)
        return self.kind


def write_persona_export(
    persona: Persona, path: str, *, conversations: int = 2000, seed: int = 0
) -> PersonaTruth:
    """Write ``persona``'s export (a conversations.json of ``conversations`` conversations,
    newest first) to the local ``path``; returns what was planted where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    truth = ExportTruth()
    generator = _PersonaGenerator(persona, conversations, seed)
    with open(path, "wb") as out:
        sink = _Sink(out)
        sink.write("[")
        for index in range(conversations):
            if index:
                sink.write(", ")
            generator.write_conversation(sink, truth, 120_000, 0)
        sink.write("]")
        sink.flush()
        truth.bytes_written = sink.bytes
    return PersonaTruth(persona, conversations, truth, generator.plant_conversations)

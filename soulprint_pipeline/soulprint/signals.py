"""What the person states about themselves, mined from every row: candidate facts, dated.

Three sources, in the order they are trusted: custom instructions (the newest version wins;
ChatGPT's wrapper text stripped, labelled fields such as "Preferred name:" and "Role:" read),
saved memories ("User's wife is called Harriet."), and the person's own chat messages
("I live in Denver", "vivo en Sevilla", "j'habite à Lyon"). Each :class:`Candidate` keeps a short
quote and the time of its conversation, so a fact stated once, in one chat of thousands, still
reaches the profile::

    facts = StatedFacts()
    for batch in batches:
        facts.add(batch)
    facts.best("location")                         # a Candidate, or None
    facts.candidates()                             # every distinct one, most trusted first

Memory stays bounded: at most ``MAX_CANDIDATES`` distinct candidates are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY, UTC_MICROS
from soulprint_pipeline.soulprint.sections import _words

SOURCES = ("custom_instructions", "memory", "chat")
KINDS = (
    "name",
    "preferred_address",
    "location",
    "occupation",
    "relationship",
    "interest",
    "instruction",
)
MAX_CANDIDATES = 2_000
QUOTE_CHARS = 120
#: Only the start of a chat message is read (a disclosure is rarely deep in a paste).
CHAT_SAMPLE_CHARS = 1_000

# ChatGPT's own words around custom instructions, never the person's.
_WRAPPER_RES = (
    re.compile(
        r"The user provided the following information about themselves\..*?User profile:\s*",
        re.S | re.I,
    ),
    re.compile(r"The user provided the following information about themselves\.?\s*", re.I),
    re.compile(
        r"The user provided the additional info about how they would like you to respond:?\s*",
        re.I,
    ),
    re.compile(r"^\s*(?:about me|how to respond)\s*:\s*", re.I | re.M),
    re.compile(r"```(?:[a-z]+\n)?"),  # a fence, and its language tag
)
_RESPOND_SPLIT_RE = re.compile(r"^\s*how to respond\s*:", re.I | re.M)

_CAP = r"[A-ZÀ-ÖØ-Þ][\w'’-]+"
_NAME = rf"{_CAP}(?:\s+{_CAP}){{0,2}}"
_PLACE = (
    rf"{_CAP}(?:[ -](?:(?:de|del|da|do|upon|on|sur|en|la|le)[ -])?{_CAP})*"
    rf"(?:,\s*{_CAP}(?:\s{_CAP})*)?"
)
_END = (
    r"(?=\s+(?:and|but|who|with|at|in|on|for|from|since|every|living|based|working|y|e|et|mais"
    r"|pero|con|avec|where"
    r"|because)\b|[.,;:!?()\n]|$)"
)
_PHRASE = rf"(?P<v>[^.,;:!?()\n]{{2,60}}?){_END}"

_LABELS = {
    "preferred name": "preferred_address",
    "nickname": "preferred_address",
    "name": "name",
    "full name": "name",
    "role": "occupation",
    "occupation": "occupation",
    "job": "occupation",
    "profession": "occupation",
    "location": "location",
    "city": "location",
    "interests": "interest",
    "hobbies": "interest",
}
_LABEL_RE = re.compile(r"^\s*(?P<label>[A-Za-z ]{2,30}?)\s*:\s*(?P<value>.+?)\s*$")

_SUBJECT = r"(?:i|i'm|i am|user|the user|user's|the user's)"
_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "name": (
        re.compile(
            r"(?i:\b(?:my (?:full )?name is|my name's|(?:the )?user's (?:full )?name is"
            r"|user is named|i am called|i'm called|me llamo|mi nombre es|je m'appelle"
            rf"|je m’appelle|mon nom est))\s+(?P<v>{_NAME})"
        ),
    ),
    "preferred_address": (
        re.compile(
            rf"(?i:\b(?:call me|i go by|address me as|appelle-moi|llámame))\s+(?P<v>{_CAP})"
        ),
    ),
    "location": (
        re.compile(
            r"(?i:\b(?:i|user|the user|we)\s+(?:currently\s+)?lives?\s+(?:in|near)"
            r"|\b(?:i'm|i am|user is|the user is|we're|we are)\s+(?:currently\s+)?"
            r"(?:based|living|located)\s+(?:in|near)|^based\s+in|\bvivo\s+en|\bresido\s+en"
            r"|\bj'habite\s+(?:à|a|en)|\bj’habite\s+(?:à|a|en)|\bje\s+vis\s+(?:à|a|en)"
            r"|\bmy\s+(?:home\s*town|city)\s+is)\s+(?:the\s+)?"
            rf"(?P<v>{_PLACE})"
        ),
    ),
    "occupation": (
        re.compile(
            rf"(?i:\b{_SUBJECT}\s+(?:currently\s+)?works?\s+as|\bi'm\s+working\s+as"
            r"|\bmy\s+(?:job|role|occupation|profession)\s+is|\btrabajo\s+(?:como|de)"
            r"|\bje\s+travaille\s+comme)\s+(?:an?\s+|the\s+|un\s+|une\s+)?" + _PHRASE
        ),
        re.compile(
            r"(?i:\b(?:i am|i'm|user is|the user is|soy)\s+(?:an?\s+|un\s+|una\s+)"
            r"|\bje\s+suis\s+(?:une?\s+)?)" + _PHRASE
        ),
    ),
    "interest": (
        re.compile(
            r"(?i:\b(?:i|user|the user)\s+(?:also\s+)?(?:play|plays|practice|practices)"
            r"|\b(?:i'm|i am|user is|the user is)\s+(?:learning(?:\s+to\s+play)?|training\s+for)"
            r"|\b(?:i|user)\s+(?:have\s+|has\s+)?(?:recently\s+)?(?:taken|took|takes)\s+up"
            r"|\bi\s+started|\b(?:i|user)\s+(?:love|loves|enjoy|enjoys)"
            r"|\bestoy\s+aprendiendo(?:\s+a\s+tocar)?|\bme\s+encanta|\bme\s+gusta"
            r"|\bj'adore|\bj’adore|\bje\s+me\s+suis\s+mise?\s+(?:à|a)|\bj'apprends|\bj’apprends"
            r"|\b(?:user|the user|i am|i'm)\s+(?:is\s+)?an?\s+keen"
            r"|\b(?:user|the user|i)\s+(?:sings?|dances?)\s+in"
            r"|\bi\s+keep(?=\s+(?:bees|chickens|hens|goats)))\s+" + _PHRASE
        ),
    ),
}
#: Words one of which each pattern of _PATTERNS needs (lowercase), in the same order.
_TRIGGERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "name": (("name", "called", "llamo", "appelle", "nom est"),),
    "preferred_address": (("call me", "go by", "address me", "appelle-moi", "llámame"),),
    "location": (
        ("live", "based", "located", "vivo", "resido", "habite", "je vis", "home", "city"),
    ),
    "occupation": (
        ("work", "job", "role", "occupation", "profession", "trabajo", "travaille"),
        ("i am a", "i'm a", "user is a", "soy un", "je suis"),
    ),
    "interest": (
        (
            "play", "practi", "learning", "training", "taken up", "took up", "takes up",
            "started", "love", "enjoy", "aprendiendo", "encanta", "gusta", "adore", "mis",
            "apprends", "keen", "sing", "danc", "keep",
        ),
    ),
}  # fmt: skip
_RELATION_TRIGGERS = (
    "my ",
    "our ",
    "user",
    "i have",
    "mi ",
    "mis ",
    "ma ",
    "mon ",
    "nuestr",
    "notre",
)


def _any_of(words: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(word) for word in words))


_TRIGGER_RES = {
    kind: tuple(_any_of(words) for words in triggers) for kind, triggers in _TRIGGERS.items()
}
_RELATION_TRIGGER_RE = _any_of(_RELATION_TRIGGERS)
_RELATIONS = {
    "wife": "wife", "husband": "husband", "partner": "partner", "girlfriend": "girlfriend",
    "boyfriend": "boyfriend", "daughter": "daughter", "son": "son", "mother": "mother",
    "mom": "mother", "mum": "mother", "father": "father", "dad": "father", "sister": "sister",
    "brother": "brother", "friend": "friend", "dog": "dog", "cat": "cat", "puppy": "dog",
    "kitten": "cat", "hermano": "brother", "hermana": "sister", "hijo": "son", "hija": "daughter",
    "esposo": "husband", "esposa": "wife", "marido": "husband", "mujer": "wife", "novio":
    "boyfriend", "novia": "girlfriend", "perro": "dog", "perra": "dog", "gato": "cat",
    "gata": "cat", "madre": "mother", "padre": "father", "frère": "brother", "sœur": "sister",
    "soeur": "sister", "fils": "son", "fille": "daughter", "mari": "husband", "femme": "wife",
    "chien": "dog", "chienne": "dog", "chat": "cat", "chatte": "cat", "mère": "mother",
    "père": "father", "copain": "boyfriend", "copine": "girlfriend",
}  # fmt: skip
_RELATION_RE = re.compile(
    r"(?i:\b(?:my|our|user's|the user's|user has an?|the user has an?|i have an?|mi|mis|ma|mon"
    r"|nuestra|nuestro|notre)\s+(?:little\s+|older\s+|younger\s+|new\s+|petite?\s+)?)"
    rf"(?P<rel>(?i:{'|'.join(sorted(_RELATIONS, key=len, reverse=True))}))\b"
    r"(?:,?\s+(?:(?i:is\s+called|is\s+named|named|called|se\s+llama|s'appelle)\s+)?"
    rf"(?P<name>{_CAP}))"
)
_NOT_NAMES = _words(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May "
    "June July August September October November December I The And But"
)
#: Role words that are not jobs ("I am a vegetarian", "soy una persona").
_NOT_OCCUPATIONS = _words(
    "vegetarian vegan beginner fan lover member believer introvert extrovert parent mother "
    "father mom dad mum person human perfectionist runner reader foodie bit little lot big "
    "huge keen persona"
)
_OCCUPATION_ENDINGS = (
    "er", "or", "ist", "ian", "ant", "ent", "eer", "ect", "man", "woman", "nurse", "chef", "cook",
    "pilot", "student", "analyst", "dev", "ceo", "cto", "coach", "founder", "owner", "consultant",
    "surgeon", "barista", "clerk", "artist", "scientist", "eur", "euse", "eure", "ère", "ienne",
    "iste", "ero", "era", "ora", "ista", "ante", "ente", "ico", "ica", "solicitor", "lawyer",
)  # fmt: skip
_ARTICLE_RE = re.compile(r"^(?:(?:the|a|an|la|el|los|las|le|les|un|une|una|to)\s+|l['’]\s*)", re.I)
#: Cheap RE2 pre-filter over chat messages (pyarrow): only these reach the Python patterns.
_CHAT_PREFILTER = (
    r"(?i)\b(my name|call me|i go by|me llamo|m'appelle|m’appelle|live in|based in|vivo en"
    r"|habite|je vis|work as|working as|trabajo|travaille|je suis|i'm an? |i am an? |soy|"
    r"learning|taken up|took up|i started|i play|i love|i enjoy|encanta|aprendiendo|j'adore"
    r"|j’adore|mise? à|j'apprends|my (wife|husband|partner|sister|brother|daughter|son|dog|cat"
    r"|mom|mum|dad|mother|father|friend|girlfriend|boyfriend)|mi (herman|hij|espos|perr|gat|madre"
    r"|padre|novi)|m(a|on) (fille|fils|sœur|soeur|frère|mari|femme|chien|chat|mère|père))"
)


@dataclass(frozen=True)
class Candidate:
    """One stated fact: its kind, value, source, when (seconds; None unknown) and a quote."""

    kind: str
    value: str
    source: str
    when: float | None
    quote: str
    mentions: int = 1

    def line(self) -> str:
        """The candidate as a line of the model's candidate-facts block."""
        from datetime import UTC, datetime

        day = (
            datetime.fromtimestamp(self.when, UTC).date().isoformat()
            if self.when is not None
            else "undated"
        )
        times = f", {self.mentions}x" if self.mentions > 1 else ""
        return f'{self.kind}: {self.value} [{self.source}, {day}{times}] "{self.quote}"'


def custom_instruction_parts(text: str) -> tuple[str, str]:
    """``(about, respond)`` of one custom-instructions row, ChatGPT's wrapper text removed."""
    pieces = _RESPOND_SPLIT_RE.split(text, maxsplit=1)
    about, respond = pieces[0], pieces[1] if len(pieces) > 1 else ""
    return _unwrap(about), _unwrap(respond)


def _unwrap(text: str) -> str:
    for pattern in _WRAPPER_RES:
        text = pattern.sub("", text)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_MEMORY_PREFIX_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:\[[^\]]*\]\.?\s*)?")


def sentences(text: str) -> list[str]:
    """The lines and sentences of a text, list numbering and memory dates removed."""
    out: list[str] = []
    for line in text.splitlines():
        line = _MEMORY_PREFIX_RE.sub("", line).strip()
        out += [s.strip() for s in _SENTENCE_RE.split(line) if s.strip()]
    return out


_MEMORY_DATE_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?\[(\d{4})-(\d{2})-(\d{2})\]")


def dated_memory_items(text: str) -> list[tuple[float | None, str]]:
    """The memories of one memory row, bare, each with the time it was saved (seconds): a
    snapshot lists them numbered and dated ("3. [2025-05-20]. User lives in Bristol."), and
    an old memory listed in a new snapshot is still old. ``None`` for an undated one."""
    out: list[tuple[float | None, str]] = []
    for line in text.splitlines():
        item = _MEMORY_PREFIX_RE.sub("", line).strip()
        if not item:
            continue
        date = _MEMORY_DATE_RE.match(line)
        saved = None
        if date is not None:
            try:
                day = datetime(*map(int, date.groups()), tzinfo=UTC)  # type: ignore[misc]
                saved = day.timestamp()
            except ValueError:  # "[2025-13-40]": not a date
                pass
        out.append((saved, item))
    return out


def _clean(kind: str, value: str) -> str:
    value = value.strip(" '\"-*")
    if kind in ("interest", "occupation"):
        value = _ARTICLE_RE.sub("", value)
        value = re.sub(r"\s+(?:classes|lessons|class|cours|clases)\b.*$", "", value, flags=re.I)
        value = re.sub(r"\s+(?:last|this|next|recently|lately)\b.*$", "", value, flags=re.I)
        value = _ARTICLE_RE.sub("", value)
        if kind == "interest" and value.lower().startswith(("bees", "chickens")):
            value = f"keeping {value}"
    return value.strip()


def _plausible(kind: str, value: str, pattern_index: int) -> bool:
    words = value.split()
    if not words or len(value) < 2:
        return False
    if kind in ("name", "preferred_address", "location"):
        return words[0] not in _NOT_NAMES
    if kind == "occupation":
        if not 1 <= len(words) <= 5:
            return False
        head = words[0].lower()
        if pattern_index == 0:  # "I work as ...", "trabajo como ...": stated as a job
            return head not in _NOT_OCCUPATIONS
        last = words[-1].lower()
        if head in _NOT_OCCUPATIONS or last in _NOT_OCCUPATIONS:
            return False
        acronym = bool(re.fullmatch(r"[A-Z]{2,5}", words[-1]))
        return acronym or any(w.lower().endswith(_OCCUPATION_ENDINGS) for w in words[:2])
    if kind == "interest":
        return 1 <= len(words) <= 4 and words[0].lower() not in ("it", "you", "that", "this")
    return True


def find_statements(text: str, *, person_only: bool = False) -> Iterator[tuple[str, str, str]]:
    """``(kind, value, quote)`` for each fact ``text`` states about the person.

    ``person_only`` (chat messages) keeps first-person statements: "User is..." is a memory's
    way of writing, never the person's.
    """
    for sentence in sentences(text):
        quote = sentence[:QUOTE_CHARS]
        label = _LABEL_RE.match(sentence)
        if label and label.group("label").strip().lower() in _LABELS:
            kind = _LABELS[label.group("label").strip().lower()]
            value = label.group("value").strip()
            if kind == "interest":
                for item in re.split(r",\s*|\s+and\s+", value):
                    if _clean(kind, item):
                        yield kind, _clean(kind, item), quote
            elif value:
                yield kind, value, quote
            continue
        if label and label.group("label").strip().lower().startswith("other"):
            sentence = label.group("value")
        lower = sentence.lower()
        for kind, patterns in _PATTERNS.items():
            for index, pattern in enumerate(patterns):
                if not _TRIGGER_RES[kind][index].search(lower):
                    continue  # a substring test is far cheaper than the pattern's scan
                for match in pattern.finditer(sentence):
                    if person_only and re.match(r"(?i)(the )?user", match.group(0)):
                        continue
                    value = _clean(kind, match.group("v"))
                    if _plausible(kind, value, index):
                        yield kind, value, quote
                        break
                else:
                    continue
                break
        if not _RELATION_TRIGGER_RE.search(lower):
            continue
        for match in _RELATION_RE.finditer(sentence):
            name = match.group("name")
            if name in _NOT_NAMES:
                continue
            relation = _RELATIONS[match.group("rel").lower()]
            yield "relationship", f"{name} ({relation})", quote


class StatedFacts:
    """Candidate facts from custom instructions, memories and chat messages, in bounded memory.

    Feed it every row batch with :meth:`add` (custom-instruction rows have no time of their own:
    their conversation's time is theirs, so versions are ordered by when they held).
    """

    def __init__(self) -> None:
        # (kind, folded value, source) -> candidate (the newest quote, mentions counted)
        self._found: dict[tuple[str, str, str], Candidate] = {}
        self._versions: dict[str, float | None] = {}  # custom-instructions text -> newest time
        self._ranked: list[Candidate] | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        """Mine one batch of rows (``rows.SCHEMA`` columns, or at least ``role``,
        ``content_type``, ``text``, ``created_at`` and ``conversation_created_at``)."""
        if batch.num_rows == 0:
            return
        self._ranked = None
        kinds = _strings(batch.column("content_type"))
        role = _strings(batch.column("role"))
        text = _strings(batch.column("text"))
        when = _seconds(batch, "created_at")
        started = _seconds(batch, "conversation_created_at")
        signal = pc.is_in(kinds, pa.array([CUSTOM_INSTRUCTIONS, MEMORY]))
        for index in pc.indices_nonzero(pc.fill_null(signal, False)).to_pylist():
            kind, body = kinds[index].as_py(), text[index].as_py() or ""
            moment = started[index] if started[index] is not None else when[index]
            if kind == CUSTOM_INSTRUCTIONS:
                about, respond = custom_instruction_parts(body)
                key = f"{about}\n\x00{respond}"
                seen = self._versions.get(key)
                if key not in self._versions or (
                    moment is not None and (seen is None or moment > seen)
                ):
                    self._versions[key] = moment
            else:
                for saved, item in dated_memory_items(body):
                    saved = saved if saved is not None else moment or when[index]
                    for fact, value, quote in find_statements(item):
                        self._keep(Candidate(fact, value, "memory", saved, quote))
        chat = pc.and_(pc.equal(role, "user"), pc.invert(signal))
        sample = pc.utf8_slice_codeunits(text, 0, CHAT_SAMPLE_CHARS)
        hits = pc.and_(chat, pc.match_substring_regex(sample, _CHAT_PREFILTER))
        for index in pc.indices_nonzero(pc.fill_null(hits, False)).to_pylist():
            moment = when[index] if when[index] is not None else started[index]
            body = sample[index].as_py() or ""
            for fact, value, quote in find_statements(body, person_only=True):
                if fact != "instruction":
                    self._keep(Candidate(fact, value, "chat", moment, quote))

    def _keep(self, candidate: Candidate) -> None:
        key = (candidate.kind, candidate.value.casefold(), candidate.source)
        seen = self._found.get(key)
        if seen is None:
            if len(self._found) >= MAX_CANDIDATES:
                return
            self._found[key] = candidate
            return
        newer = (candidate.when or 0) >= (seen.when or 0)
        self._found[key] = Candidate(
            seen.kind,
            seen.value,
            seen.source,
            candidate.when if newer else seen.when,
            candidate.quote if newer else seen.quote,
            seen.mentions + 1,
        )

    # -- reading -----------------------------------------------------------------------------

    def versions(self) -> list[tuple[float | None, str, str]]:
        """The custom-instruction versions ``(when, about, respond)``, newest first."""
        ordered = sorted(
            self._versions.items(),
            key=lambda item: (item[1] is None, -(item[1] or 0.0), item[0]),
        )
        return [(when, *key.split("\n\x00", 1)) for key, when in ordered]  # type: ignore[misc]

    def instructions(self) -> list[str]:
        """The newest custom instructions' "How to respond" lines."""
        versions = self.versions()
        return sentences(versions[0][2]) if versions else []

    def candidates(self) -> list[Candidate]:
        """Every candidate, the most trusted first: newest custom instructions, then older
        versions, memories, then chat (most mentioned, then newest)."""
        if self._ranked is None:
            self._ranked = self._rank()
        return list(self._ranked)

    def _rank(self) -> list[Candidate]:
        out: list[Candidate] = []
        for rank, (when, about, respond) in enumerate(self.versions()):
            for kind, value, quote in find_statements(about):
                if not any(c.kind == kind and c.value == value for c in out):
                    out.append(Candidate(kind, value, "custom_instructions", when, quote, rank + 1))
            for line in sentences(respond):
                if not any(c.kind == "instruction" and c.value == line for c in out):
                    out.append(
                        Candidate("instruction", line, "custom_instructions", when, line[:120])
                    )
        # mentions of a custom-instructions candidate is its version's rank (1: the newest)
        ranked = sorted(
            self._found.values(),
            key=lambda c: (
                SOURCES.index(c.source),
                -c.mentions if c.source == "chat" else 0,
                -(c.when or 0.0),
                c.kind,
                c.value,
            ),
        )
        # a name cut off by the end of a message ("my dog Bis") is the prefix of a whole one
        names = [c.value for c in ranked if c.kind == "relationship"]
        ranked = [
            c
            for c in ranked
            if c.kind != "relationship"
            or not any(other != c.value and _cut_off(c.value, other) for other in names)
        ]
        return out + ranked

    def best(self, kind: str) -> Candidate | None:
        """The most trusted candidate of ``kind``: the newest custom instructions stating it,
        else the newest memory, else the chat statement made most often (then newest)."""
        for candidate in self.candidates():
            if candidate.kind == kind:
                return candidate
        return None

    def all_of(self, kind: str) -> list[Candidate]:
        """Every candidate of ``kind``, most trusted first, one per value."""
        seen: set[str] = set()
        out = []
        for candidate in self.candidates():
            folded = candidate.value.casefold()
            if candidate.kind == kind and folded not in seen:
                seen.add(folded)
                out.append(candidate)
        return out


def _cut_off(value: str, other: str) -> bool:
    """Whether relationship ``value`` ("Bis (dog)") is a cut-off form of ``other``
    ("Biscuit (dog)")."""
    name, _, relation = value.partition(" (")
    other_name, _, other_relation = other.partition(" (")
    return relation == other_relation and other_name.startswith(name) and other_name != name


def _strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _seconds(batch: pa.RecordBatch, name: str) -> list[float | None]:
    if name not in batch.schema.names:
        return [None] * batch.num_rows
    column = batch.column(name)
    if column.type != UTC_MICROS:
        column = column.cast(UTC_MICROS)
    return [None if m is None else m / 1e6 for m in pc.cast(column, pa.int64()).to_pylist()]


def statements_of(texts: Iterable[str]) -> list[tuple[str, str, str]]:
    """Every ``(kind, value, quote)`` stated in ``texts`` (custom instructions, memories)."""
    return [found for text in texts for found in find_statements(text)]

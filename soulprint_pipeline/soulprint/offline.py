"""The offline model: a soulprint from the data itself, with no network and no key.

Every model backend returns the same five JSON objects (see DESIGN.md, "The soulprint's
sections"); :func:`validate_sections` is the one gate they all pass through, so the app always
reads complete, well-typed sections::

    sections = validate_sections(raw)              # fills gaps, rejects wrong types
    soulprint_text = render_markdown(sections)     # what the app shows
    columns = section_markdown(sections)           # {"soul_md": "<JSON text>", ...}

The offline model needs no network and no key: :class:`ProfileEvidence` accumulates bounded
statistics from the message rows (``rows.SCHEMA`` record batches), and
:func:`offline_soulprint` turns them into sections deterministically::

    evidence = ProfileEvidence()
    for batch in ExportReader(url).batches():
        evidence.add(batch)
    sections = offline_soulprint(evidence)
    evidence_summary(evidence)                     # counts and rates only, never text

Times are UTC (exports carry no time zone), and languages are told apart by Unicode script
plus a few common function words, so the profile says what the data supports and no more: a
string without evidence is :data:`NOT_ENOUGH_DATA`, a list without evidence is empty.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY, UTC_MICROS
from soulprint_pipeline.soulprint.sections import (
    NOT_ENOUGH_DATA,
    _cap,
    _words,
    validate_sections,
)

# --------------------------------------------------------------------------- evidence

#: The keyword counter is pruned to its KEYWORD_PRUNE_TO most common words whenever it grows
#: past KEYWORD_LIMIT distinct words.
KEYWORD_LIMIT = 50_000
KEYWORD_PRUNE_TO = 10_000
#: Only the start of each user message is tokenized (a pasted document is not the person's
#: own words, and this keeps the work per message bounded).
KEYWORD_SAMPLE_CHARS = 1000
SCRIPT_SAMPLE_CHARS = 500
MAX_CUSTOM_INSTRUCTIONS = 3
MAX_MEMORIES = 200
MAX_SIGNAL_CHARS = 4000
RELATION_LIMIT = 500
LONG_MESSAGE_CHARS = 2000

#: English function words and chat filler, never reported as interests.
STOPWORDS = _words(
    """
    a about above after again against all almost also although always am among an and another
    any anyone anything anyway are aren around as ask asked at away back be became because
    been before being below best better between both but by came can cannot could couldn did
    didn do does doesn doing don done down during each either else enough even ever every
    everything few find first for from further get gets getting give given go goes going gone
    good got great had hadn has hasn have haven having he her here hers herself him himself his
    how however i if in into is isn it its itself just keep kind know last least less let like
    little long look lot made make makes making many may maybe me might mine more most much
    must my myself need needs never new next no nor not nothing now of off often oh ok okay on
    once one only or other others our ours ourselves out over own part please put quite rather
    really right said same say see seem seems she should shouldn show since so some something
    sometimes still such sure take tell than thank thanks that the their theirs them themselves
    then there these they thing things think this those though through thus to today too took
    toward try trying two under until up upon us use used using very want wanted wants was
    wasn way we well went were weren what whatever when where whether which while who whole
    whom whose why will with within without won would wouldn yeah yes yet you your yours
    yourself yourselves able actually already anybody became becomes certain certainly
    different does done else etc ever example instead likely mean means okay per perhaps
    quick question follow hmm hello hey hi image audio help explain tell write
    zero three four five six seven eight nine ten twenty hundred thousand second third half
    add adding added break consider followed following sounds sound ran small big large short
    main high low full simple easy hard real true bit time times day days year years month
    ago soon later early late usually around enough start started end call called come comes
    feel felt looks looking went gave asked says told ways lots able possible important
    feels needed means every someone something anything everyone include includes including
    based given going done getting around whether without already maybe probably definitely
    something else could would should might shall however therefore instead rather quite
    answer answers question questions reply response version idea ideas point points case
    work works working worked
    """
)

#: Common function words of a few Latin-script languages, counted per message to tell
#: English from French, Spanish... (scripts alone cannot).
_LANGUAGE_MARKERS: dict[str, frozenset[str]] = {
    "English": _words("the and you is are what how this that with"),
    "French": _words("je tu vous nous est les une des pas avec pour mais très être"),
    "Spanish": _words("el los las una por pero muy cómo qué estoy tengo del"),
    "German": _words("ich und nicht mit der das ist bitte eine noch mir"),
    "Portuguese": _words("não você uma com sei muito ou em ficar devo"),
    "Italian": _words("il che sono della questo perché anche ciao"),
}
_MARKER_LANGUAGE = {
    word: language for language, words in _LANGUAGE_MARKERS.items() for word in words
}
#: Function words of those languages too, so they never pass for interests.
_FOREIGN_STOPWORDS = _words(
    "que qui quoi mon ma mes ton ta tes sa ses nos vos leur dans sur sont été fait comme plus "
    "avoir faire cette ces aux du au et la le un il elle ils elles on se ne où donc car si "
    "aussi bien tout tous peut con para como más pero sobre este esta estos estas ese esa "
    "todo también hay ser fue al lo mi su sus yo du er sie es wir ihr oder aber auch nur "
    "schon sehr von zu auf für sind war sein haben hat einen dem den im am zum zur dass wie "
    "was wenn ao dos das seu sua meu minha eu ele ela isso esse essa di da nel non"
)
_ALL_STOPWORDS = STOPWORDS | frozenset(_MARKER_LANGUAGE) | _FOREIGN_STOPWORDS
_LANGUAGE_NAMES = tuple(_LANGUAGE_MARKERS)
_LANGUAGE_IDS = {language: index for index, language in enumerate(_LANGUAGE_NAMES)}

#: Scripts told apart by Unicode property (RE2 syntax), and the language each one suggests.
_SCRIPTS: dict[str, str] = {
    "Latin": r"\p{Latin}",
    "Cyrillic": r"\p{Cyrillic}",
    "Greek": r"\p{Greek}",
    "Arabic": r"\p{Arabic}",
    "Hebrew": r"\p{Hebrew}",
    "Devanagari": r"\p{Devanagari}",
    "Han": r"\p{Han}",
    "Kana": r"[\p{Hiragana}\p{Katakana}]",
    "Hangul": r"\p{Hangul}",
    "Thai": r"\p{Thai}",
}
_SCRIPT_LANGUAGE = {
    "Cyrillic": "Russian",
    "Greek": "Greek",
    "Arabic": "Arabic",
    "Hebrew": "Hebrew",
    "Devanagari": "Hindi",
    "Han": "Chinese",
    "Kana": "Japanese",
    "Hangul": "Korean",
    "Thai": "Thai",
}
_PUNCTUATION = ".,;:!?()[]{}<>\"'`*#_/\\|=+~^&%$@-–—…«»“”‘’„¿¡·•0123456789"
#: Letters of the scripts other than Latin (a cheap pre-filter for the per-script passes).
_NON_LATIN_RE = r"[\x{0370}-\x{1DFF}\x{3040}-\x{9FFF}\x{AC00}-\x{D7AF}\x{F900}-\x{FAFF}]"
#: Scripts written without spaces between words: a "word" there is a whole phrase.
_NO_SPACES_PY = re.compile("[\u0e00-\u0e7f\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")

# Per-message markers, RE2 syntax (evaluated by pyarrow.compute).
_EMOJI_RE = r"[\x{1F300}-\x{1FAFF}\x{2600}-\x{27BF}\x{1F000}-\x{1F2FF}]"
_QUESTION_RE = r"[?？¿]"
_EXCLAIM_RE = r"[!！¡]"
_POLITE_RE = (
    r"(?i)\b(please|pls|plz|thanks|thank you|thx|cheers|merci|gracias|danke|bitte|por favor"
    r"|obrigad[oa]|grazie|s'il (te|vous) pla[iî]t)\b"
)
_LAUGH_RE = r"(?i)\b(ha(ha)+|lol|lmao|rofl|he(he)+)\b|[😂🤣😆😅]"
_FEELING_RE = (
    r"(?i)\b(feel|feels|feeling|felt|stressed|stress|anxious|anxiety|worried|worry|overwhelmed"
    r"|nervous|sad|lonely|happy|excited|frustrated|grateful|tired|exhausted|scared|upset|miss)\b"
)
_LOWER_START_RE = r"^\p{Ll}"

_RELATIONS = (
    "wife|husband|partner|girlfriend|boyfriend|fianc[ée]e?|daughter|son|kids|children|baby"
    "|mother|mom|mum|father|dad|parents|sister|brother|grandma|grandmother|grandpa|grandfather"
    "|aunt|uncle|cousin|niece|nephew|best friend|friend|boss|manager|colleague|coworker"
    "|roommate|dog|cat|puppy|kitten"
)
_RELATION_RE = re.compile(
    r"(?i:\b(?:my|our|user's|user has an?|i have an?|i has an?|adopted an?)\s+"
    r"(?:little\s+|older\s+|younger\s+|new\s+|baby\s+)?)"
    rf"(?P<rel>(?i:{_RELATIONS}))\b"
    r"(?:,?\s+(?:(?i:is\s+called|is\s+named|named|called)\s+)?"
    r"(?P<name>[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+)\b)?"
)
# The same shape in RE2 syntax, to pick in Arrow the few messages worth the Python regex.
_RELATION_PREFILTER = (
    r"(?i)\b(my|our|have an?|has an?|adopted an?)\s+"
    rf"(little\s+|older\s+|younger\s+|new\s+|baby\s+)?({_RELATIONS})\b"
)
_NOT_NAMES = _words(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "May June July August September October November December I The And But"
)


def _strings(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A string column, decoded if it arrives dictionary-encoded (as Parquet may give it)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _sum(values: pa.Array) -> int:
    total = pc.sum(values).as_py()
    return int(total or 0)


def _utc_micros(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp column as ``timestamp[us, UTC]`` (Parquet or pandas may give ns, or no tz)."""
    if column.type != UTC_MICROS:
        return column.cast(UTC_MICROS)
    return column


def _count_true(mask: pa.Array) -> int:
    return _sum(pc.cast(pc.fill_null(mask, False), pa.int64()))


def _bucket_value(bucket: int) -> float:
    return 2 ** ((bucket + 0.5) / 8) - 1


class _LengthStats:
    """Mean (exact) and median (from a log-scale histogram) of lengths, in bounded memory."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.histogram: Counter[int] = Counter()

    def add(self, lengths: pa.Array) -> None:
        lengths = pc.drop_null(lengths)
        if len(lengths) == 0:
            return
        self.count += len(lengths)
        self.total += _sum(lengths)
        buckets = pc.cast(
            pc.floor(pc.multiply(pc.log2(pc.add(pc.cast(lengths, pa.float64()), 1.0)), 8.0)),
            pa.int64(),
        )
        for entry in pc.value_counts(buckets).to_pylist():
            self.histogram[entry["values"]] += entry["counts"]

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def median(self) -> float:
        if not self.count:
            return 0.0
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen * 2 >= self.count:
                return round(_bucket_value(bucket), 1)
        return 0.0  # unreachable


class ProfileEvidence:
    """Statistics about one person, accumulated from row batches in bounded memory.

    Feed it every :data:`rows.SCHEMA` record batch of an export with :meth:`add`. It keeps
    counts, rates, two log-scale length histograms, hour/weekday activity, scripts and
    languages, a bounded keyword counter (document frequency of words in the person's own
    messages, stopwords excluded), a bounded counter of the people and pets they mention, and
    the profile signals: the few most recent distinct custom instructions and up to
    ``MAX_MEMORIES`` distinct memories. Nothing grows with the number of batches.
    """

    def __init__(self) -> None:
        self.batches = 0
        self.rows = 0
        self.conversations = 0
        self.user_messages = 0
        self.assistant_messages = 0
        self.tool_messages = 0
        self.custom_instruction_rows = 0
        self.memory_rows = 0
        self.hours = [0] * 24  # user messages by hour of day, UTC
        self.weekdays = [0] * 7  # user messages by weekday, Monday first, UTC
        self.first_user_at: int | None = None  # microseconds since the epoch
        self.last_user_at: int | None = None
        self.user_lengths = _LengthStats()
        self.assistant_lengths = _LengthStats()
        self.questions = 0
        self.polite = 0
        self.exclaims = 0
        self.laughs = 0
        self.feelings = 0
        self.lowercase_starts = 0
        self.emoji_messages = 0
        self.emoji_total = 0
        self.user_code = 0  # user messages with code (fences, or content type code)
        self.user_images = 0  # user messages with an image
        self.long_messages = 0  # user messages of LONG_MESSAGE_CHARS or more (pastes)
        self.code_rows = 0  # rows of content type code, any role
        self.execution_outputs = 0
        self.tether_quotes = 0
        self.generated_images = 0  # non-user rows with an image (DALL-E and the like)
        self.script_messages: Counter[str] = Counter()
        self.language_messages: Counter[str] = Counter()
        self.keywords: Counter[str] = Counter()
        self.keyword_prunes = 0
        self.relations: Counter[tuple[str, str]] = Counter()
        self._custom: dict[str, float] = {}  # text -> newest time seen (seconds)
        self._memories: dict[str, float] = {}

    # -- feeding -----------------------------------------------------------------------------

    def add(self, batch: pa.RecordBatch) -> None:
        """Accumulate one batch of rows (any schema with the columns of ``rows.SCHEMA``)."""
        if batch.num_rows == 0:
            return
        self.batches += 1
        self.rows += batch.num_rows
        role = _strings(batch.column("role"))
        content_type = _strings(batch.column("content_type"))
        text = _strings(batch.column("text"))

        # a conversation's rows are numbered from 0 (a split conversation continues its count)
        self.conversations += _count_true(pc.equal(batch.column("position"), 0))
        signal = pc.is_in(content_type, pa.array([CUSTOM_INSTRUCTIONS, MEMORY]))
        message = pc.invert(signal)
        is_user = pc.and_(pc.equal(role, "user"), message)
        is_assistant = pc.and_(pc.equal(role, "assistant"), message)
        self.assistant_messages += _count_true(is_assistant)
        self.tool_messages += _count_true(pc.and_(pc.equal(role, "tool"), message))
        self.code_rows += _count_true(pc.equal(content_type, "code"))
        self.execution_outputs += _count_true(pc.equal(content_type, "execution_output"))
        self.tether_quotes += _count_true(pc.equal(content_type, "tether_quote"))
        # images shown by the assistant or a tool (DALL-E) come as multimodal_text rows
        shown = pc.and_(pc.invert(is_user), pc.equal(content_type, "multimodal_text"))
        self.generated_images += _count_true(pc.match_substring(pc.filter(text, shown), "[image]"))
        self.assistant_lengths.add(pc.utf8_length(pc.filter(text, is_assistant)))

        if _count_true(signal):
            self._add_signals(batch.filter(signal))

        users = batch.filter(is_user)
        if users.num_rows:
            self._add_user_messages(
                _strings(users.column("text")),
                _strings(users.column("content_type")),
                _utc_micros(users.column("created_at")),
            )

    def _add_signals(self, rows: pa.RecordBatch) -> None:
        kinds = _strings(rows.column("content_type")).to_pylist()
        texts = _strings(rows.column("text")).to_pylist()
        times = pc.cast(_utc_micros(rows.column("created_at")), pa.int64()).to_pylist()
        for kind, text, micros in zip(kinds, texts, times, strict=True):
            text = (text or "").strip()[:MAX_SIGNAL_CHARS]
            if not text:
                continue
            seconds = micros / 1e6 if micros is not None else float("-inf")
            if kind == CUSTOM_INSTRUCTIONS:
                self.custom_instruction_rows += 1
                _keep_newest(self._custom, text, seconds, MAX_CUSTOM_INSTRUCTIONS)
            else:
                self.memory_rows += 1
                _keep_newest(self._memories, text, seconds, MAX_MEMORIES)

    def _add_user_messages(self, text: pa.Array, content_type: pa.Array, created: pa.Array) -> None:
        count = len(text)
        self.user_messages += count
        lengths = pc.utf8_length(text)
        self.user_lengths.add(lengths)
        self.long_messages += _count_true(pc.greater_equal(lengths, LONG_MESSAGE_CHARS))

        stamps = pc.drop_null(created)
        if len(stamps):
            for entry in pc.value_counts(pc.hour(stamps)).to_pylist():
                self.hours[entry["values"]] += entry["counts"]
            for entry in pc.value_counts(pc.day_of_week(stamps)).to_pylist():
                self.weekdays[entry["values"]] += entry["counts"]
            bounds = pc.min_max(pc.cast(stamps, pa.int64())).as_py()
            if self.first_user_at is None or bounds["min"] < self.first_user_at:
                self.first_user_at = bounds["min"]
            if self.last_user_at is None or bounds["max"] > self.last_user_at:
                self.last_user_at = bounds["max"]

        self.user_code += _count_true(
            pc.or_(pc.match_substring(text, "```"), pc.equal(content_type, "code"))
        )

        sample = pc.utf8_slice_codeunits(text, 0, KEYWORD_SAMPLE_CHARS)
        self.user_images += _count_true(pc.match_substring(sample, "[image]"))
        self.questions += _count_true(pc.match_substring_regex(sample, _QUESTION_RE))
        self.exclaims += _count_true(pc.match_substring_regex(sample, _EXCLAIM_RE))
        self.polite += _count_true(pc.match_substring_regex(sample, _POLITE_RE))
        self.laughs += _count_true(pc.match_substring_regex(sample, _LAUGH_RE))
        self.feelings += _count_true(pc.match_substring_regex(sample, _FEELING_RE))
        self.lowercase_starts += _count_true(
            pc.match_substring_regex(pc.utf8_ltrim_whitespace(sample), _LOWER_START_RE)
        )
        emoji = pc.count_substring_regex(sample, _EMOJI_RE)
        self.emoji_total += _sum(emoji)
        self.emoji_messages += _count_true(pc.greater(emoji, 0))

        script_sample = pc.utf8_slice_codeunits(text, 0, SCRIPT_SAMPLE_CHARS)
        # only the messages with some non-Latin letter are worth a pass per script
        other = pc.filter(script_sample, pc.match_substring_regex(script_sample, _NON_LATIN_RE))
        for script, pattern in _SCRIPTS.items():
            # two letters in a row: a word, not a stray symbol (first match ends the search)
            found = _count_true(
                pc.match_substring_regex(
                    script_sample if script == "Latin" else other, f"{pattern}{{2}}"
                )
            )
            if found:
                self.script_messages[script] += found

        self._add_words(sample)
        self._add_relations(sample)

    def _add_words(self, sample: pa.Array) -> None:
        # Split on whitespace, then trim punctuation (much faster in Arrow than a regex split);
        # tokens still holding other characters ("don't", "user_id") are skipped below.
        # Document frequency, in Arrow: each (message, word) pair counts once. A word is its
        # index in the batch's dictionary of words, so a pair is one int64 key.
        tokens = pc.utf8_split_whitespace(pc.utf8_lower(sample))
        words = pc.utf8_trim(pc.list_flatten(tokens), characters=_PUNCTUATION)
        if len(words) == 0:
            return
        messages = len(sample)
        encoded = words.dictionary_encode()
        dictionary = encoded.dictionary.to_pylist()
        pairs = pc.unique(
            pc.add(
                pc.multiply(pc.cast(encoded.indices, pa.int64()), messages),
                pc.cast(pc.list_parent_indices(tokens), pa.int64()),
            )
        )
        word_of_pair = pc.divide(pairs, messages)  # integer division
        counts = pc.value_counts(word_of_pair)
        for index, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            word = dictionary[index]
            if (
                3 <= len(word) <= 30
                and word not in _ALL_STOPWORDS
                and _is_word(word)
                and not _NO_SPACES_PY.search(word)
            ):
                self.add_keyword(word, count)
        # a message counts once per language, however many of its markers it holds
        language_of_word = pa.array(
            [_LANGUAGE_IDS.get(_MARKER_LANGUAGE.get(word, ""), -1) for word in dictionary],
            pa.int64(),
        )
        language = pc.take(language_of_word, word_of_pair)
        marked = pc.greater_equal(language, 0)
        if not _count_true(marked):
            return
        message = pc.subtract(pairs, pc.multiply(word_of_pair, messages))
        languages = len(_LANGUAGE_IDS)
        per_message = pc.unique(
            pc.add(pc.multiply(pc.filter(message, marked), languages), pc.filter(language, marked))
        )
        language_ids = pc.subtract(
            per_message, pc.multiply(pc.divide(per_message, languages), languages)
        )
        for entry in pc.value_counts(language_ids).to_pylist():
            self.language_messages[_LANGUAGE_NAMES[entry["values"]]] += entry["counts"]

    def add_keyword(self, word: str, count: int = 1) -> None:
        """Count a topic keyword, pruning the counter when it grows past ``KEYWORD_LIMIT``."""
        keywords = self.keywords
        keywords[word] += count
        if len(keywords) > KEYWORD_LIMIT:
            kept = sorted(keywords.items(), key=lambda item: (-item[1], item[0]))
            self.keywords = Counter(dict(kept[:KEYWORD_PRUNE_TO]))
            self.keyword_prunes += 1

    def _add_relations(self, sample: pa.Array) -> None:
        candidates = pc.filter(sample, pc.match_substring_regex(sample, _RELATION_PREFILTER))
        for text in candidates.to_pylist():
            for rel, name in _find_relations(text):
                self._count_relation(rel, name)

    def _count_relation(self, rel: str, name: str, weight: int = 1) -> None:
        relations = self.relations
        relations[(rel, name)] += weight
        if len(relations) > RELATION_LIMIT:
            kept = sorted(relations.items(), key=lambda item: (-item[1], item[0]))
            self.relations = Counter(dict(kept[: RELATION_LIMIT // 5]))

    # -- reading -----------------------------------------------------------------------------

    @property
    def custom_instructions(self) -> list[str]:
        """The distinct custom-instruction texts kept, newest first."""
        return _newest_first(self._custom)

    @property
    def memories(self) -> list[str]:
        """The distinct memory texts kept, newest first."""
        return _newest_first(self._memories)

    def top_keywords(self, count: int = 20, minimum: int = 1) -> list[tuple[str, int]]:
        """The most frequent keywords (ties broken alphabetically, so the order is stable)."""
        ranked = sorted(self.keywords.items(), key=lambda item: (-item[1], item[0]))
        return [(word, n) for word, n in ranked[:count] if n >= minimum]


def _is_word(token: str) -> bool:
    """Letters only (combining marks allowed, as in Devanagari)."""
    return token.isalpha() or all(
        char.isalpha() or unicodedata.category(char).startswith("M") for char in token
    )


def _keep_newest(store: dict[str, float], text: str, seconds: float, limit: int) -> None:
    store[text] = max(seconds, store.get(text, float("-inf")))
    if len(store) > limit:
        oldest = min(store.items(), key=lambda item: (item[1], item[0]))
        del store[oldest[0]]


def _newest_first(store: Mapping[str, float]) -> list[str]:
    return [text for text, _ in sorted(store.items(), key=lambda item: (-item[1], item[0]))]


def _find_relations(text: str) -> Iterable[tuple[str, str]]:
    for match in _RELATION_RE.finditer(text):
        rel = match.group("rel").lower()
        name = match.group("name") or ""
        if name in _NOT_NAMES:
            name = ""
        yield rel, name


# --------------------------------------------------------------------------- profile facts

_BOILERPLATE_RE = re.compile(
    r"^\s*(?:about me|how to respond)\s*:\s*|"
    r"the user provided (?:the following information about themselves|the additional info "
    r"about how they would like you to respond)\s*[:.]\s*",
    re.IGNORECASE,
)
_NUMBERING_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:\[[^\]]*\]\.?\s*)?")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_STOP_AHEAD = r"(?=\s+(?:and|but|who|with|at|in|for|from|since|based|living|near)\b|[.,;!?\n]|$)"
_CAP_WORD = r"[A-ZÀ-ÖØ-Þ][\w'-]+"
_PLACE = (
    rf"{_CAP_WORD}(?:[ -](?:{_CAP_WORD}|de|del|da|do|upon|on))*"
    rf"(?:,\s*{_CAP_WORD}(?:\s{_CAP_WORD})*)?"
)
_NAME_PATTERNS = (
    re.compile(
        r"(?i:\b(?:my name is|my name's|user's name is|the user's name is|user is named"
        rf"|i am called|i'm called|name is))\s+(?P<v>{_CAP_WORD}(?:\s+{_CAP_WORD})?)"
    ),
    re.compile(rf"(?i:\b(?:call me|i go by))\s+(?P<v>{_CAP_WORD})"),
    re.compile(rf"(?i:\b(?:i am|i'm))\s+(?P<v>{_CAP_WORD})(?=\s*(?:[,.;!]|$)|\s+and\b)"),
)
_ADDRESS_RE = re.compile(rf"(?i:\b(?:call me|i go by|address me as))\s+(?P<v>{_CAP_WORD})")
_OCCUPATION_PATTERNS = (
    re.compile(
        r"(?i:\b(?:i|user|the user)\s+(?:currently\s+)?works?\s+as|\bi'm\s+working\s+as"
        r"|\bmy\s+(?:job|role|occupation|profession)\s+is)\s+(?:an?\s+|the\s+)?"
        rf"(?P<v>[^.,;!?\n]{{2,60}}?){_STOP_AHEAD}"
    ),
    re.compile(
        r"(?i:\b(?:i am|i'm|user is|the user is|i is)\s+(?:an?)\s+)"
        rf"(?P<v>[^.,;!?\n]{{2,60}}?){_STOP_AHEAD}"
    ),
)
_LOCATION_PATTERNS = (
    re.compile(
        r"(?i:\b(?:i|user|the user|we)\s+(?:currently\s+)?lives?\s+(?:in|near|outside|around)"
        r"|\b(?:i'm|i am|user is|the user is|we're|we are)\s+(?:currently\s+)?"
        r"(?:based|living|located)\s+(?:in|near)|\bbased\s+in"
        r"|\bmy\s+(?:home\s*town|city)\s+is)\s+(?:the\s+)?"
        rf"(?P<v>{_PLACE})"
    ),
    re.compile(
        r"(?i:\b(?:i'm|i am|user is|the user is|i is)\s+(?:originally\s+)?from)\s+(?:the\s+)?"
        rf"(?P<v>{_PLACE})"
    ),
)
_OCCUPATION_SUFFIXES = (
    "er", "or", "ist", "ian", "ant", "ent", "eer", "ect", "man", "woman", "person", "nurse",
    "chef", "cook", "pilot", "student", "analyst", "dev", "ceo", "cto", "coach", "founder",
    "owner", "consultant", "surgeon", "medic", "barista", "clerk", "artist", "scientist",
)  # fmt: skip
_NOT_OCCUPATIONS = _words(
    "vegetarian vegan pescatarian beginner fan lover member believer introvert extrovert "
    "parent mother father mom dad mum grandmother grandfather person human perfectionist "
    "optimist pessimist idealist realist runner reader foodie"
)
_NATIONALITY_ENDINGS = ("ese", "ish", "ian", "can", "ean")


def _fact_sentences(texts: Iterable[str]) -> list[str]:
    """Sentences of custom instructions and memories, boilerplate and numbering removed.

    The "How to respond" lines of custom instructions are left out: they are instructions,
    read from the newest custom instructions only (see :func:`_instructions`).
    """
    sentences: list[str] = []
    for text in texts:
        for line in text.splitlines():
            if line.strip().lower().startswith("how to respond"):
                continue
            line = _BOILERPLATE_RE.sub("", _NUMBERING_RE.sub("", _BOILERPLATE_RE.sub("", line)))
            for sentence in _SENTENCE_SPLIT_RE.split(line):
                sentence = _BOILERPLATE_RE.sub("", sentence).strip()
                if sentence and sentence not in sentences:
                    sentences.append(sentence)
    return sentences


def _instructions(custom: str) -> list[str]:
    """The "How to respond" sentences of one custom-instructions text."""
    out: list[str] = []
    for line in custom.splitlines():
        if line.strip().lower().startswith("how to respond"):
            line = _BOILERPLATE_RE.sub("", _BOILERPLATE_RE.sub("", line))
            for sentence in _SENTENCE_SPLIT_RE.split(line):
                sentence = sentence.strip()
                if sentence and sentence not in out:
                    out.append(sentence)
    return out


def _first_match(patterns: Iterable[re.Pattern[str]], sentences: list[str], check: Any) -> str:
    for pattern in patterns:
        for sentence in sentences:
            for match in pattern.finditer(sentence):
                value = match.group("v").strip(" '\"-")
                if value and check(pattern, value):
                    return value
    return NOT_ENOUGH_DATA


def _name_ok(pattern: re.Pattern[str], value: str) -> bool:
    if value.split()[0] in _NOT_NAMES:
        return False
    if pattern is _NAME_PATTERNS[2]:  # "I'm X.": a bare capitalized word, maybe a nationality
        return not value.lower().endswith(_NATIONALITY_ENDINGS)
    return True


def _occupation_ok(pattern: re.Pattern[str], value: str) -> bool:
    words = value.split()
    if not 1 <= len(words) <= 5:
        return False
    if pattern is _OCCUPATION_PATTERNS[0]:
        return True
    last = words[-1].lower()
    return last not in _NOT_OCCUPATIONS and last.endswith(_OCCUPATION_SUFFIXES)


def _location_ok(pattern: re.Pattern[str], value: str) -> bool:
    return value.split()[0] not in _NOT_NAMES


_PERSON_PREFIX_RE = re.compile(r"^(?:(?:the )?user|i)(?:\s+|(?='m\s))(?=['a-z])", re.IGNORECASE)
_FIRST_PERSON = {"am": "is", "'m": "is", "have": "has", "'ve": "has", "was": "was", "do": "does"}
_KEEP_VERBS = frozenset(
    ["can", "could", "will", "would", "should", "shall", "may", "might", "must", "don't", "did"]
)


def _third_person(fact: str) -> str:
    """``"like hiking"`` (from "I like hiking") -> ``"likes hiking"``; a rough conjugation."""
    first, _, rest = fact.partition(" ")
    lower = first.lower()
    if lower in _FIRST_PERSON:
        verb = _FIRST_PERSON[lower]
    elif lower in _KEEP_VERBS or lower.endswith("s") or not lower.isalpha():
        verb = first
    elif lower.endswith(("ch", "sh", "x", "o")):
        verb = first + "es"
    elif lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        verb = first[:-1] + "ies"
    else:
        verb = first + "s"
    return f"{verb} {rest}".strip() if rest else verb


def _personal_facts(sentences: list[str], known: Iterable[str] = ()) -> list[str]:
    """Sentences about the person ("User likes hiking."), without the subject.

    A fact restating an already extracted value (``known``: the name, location...) is left
    out.
    """
    known_lower = [value.lower() for value in known if value != NOT_ENOUGH_DATA]
    facts: list[str] = []
    for sentence in sentences:
        match = _PERSON_PREFIX_RE.match(sentence)
        if not match:
            continue
        fact = _third_person(sentence[match.end() :].rstrip(".!").strip())
        lower = fact.lower()
        if any(value in lower for value in known_lower):
            continue
        if fact and lower not in (f.lower() for f in facts):
            facts.append(fact)
    return facts


# --------------------------------------------------------------------------- topics

_THEMES: dict[str, frozenset[str]] = {
    "coding": _words(
        "python code function error regex sql api database javascript bug script pipeline "
        "query server deploy git docker latency cache index column file loop tuple list "
        "certificate program programming debug compile class variable json csv"
    ),
    "writing": _words(
        "writing essay letter email paragraph rewrite proofread blog title titles toast draft "
        "story poem cover grammar sentence tone wording edit"
    ),
    "cooking": _words(
        "recipe dinner dinners cook cooking risotto paella sourdough bread flour bake baking "
        "breakfast meal meals dough food kitchen starter cake stock vegetarian"
    ),
    "fitness": _words(
        "run running race workout training stretch knee injury exercise gym hiking fitness "
        "marathon hamstrings muscles weight"
    ),
    "health": _words(
        "sleep asleep health doctor diet tired stress anxiety symptoms therapy wellbeing"
    ),
    "travel": _words(
        "travel trip voyage flight hotel moving lisbon japan tokyo paris itinerary "
        "vacation holiday visit"
    ),
    "career": _words(
        "work job manager career interview meeting report role promotion transfer resume "
        "status team colleague boss startup product quarterly"
    ),
    "finance": _words(
        "budget money mortgage expenses savings rent invest investing fund spreadsheet tax "
        "taxes salary groceries loan"
    ),
    "family": _words(
        "daughter son wife husband family kids children sister brother wedding grandma "
        "parents mom dad baby dog cat pet"
    ),
    "languages": _words(
        "french spanish japanese german english chinese italian grammar translate "
        "translation vocabulary language languages pronunciation"
    ),
    "music": _words("piano guitar song songs music chords scales sing practice band"),
    "reading": _words("book books novel reading author chapter literature poetry"),
    "planning": _words(
        "plan planning schedule pomodoro productivity goals focus steps template week weekly "
        "routine organize habit deadline calendar"
    ),
}
_THEME_LABELS = {
    "coding": "programming",
    "writing": "writing",
    "cooking": "cooking",
    "fitness": "fitness",
    "health": "health and wellbeing",
    "travel": "travel",
    "career": "career and work",
    "finance": "personal finance",
    "family": "family and pets",
    "languages": "languages",
    "music": "music",
    "reading": "books",
    "planning": "planning and productivity",
}
_THEME_USAGE = {
    "coding": "coding and debugging",
    "writing": "writing and editing",
    "cooking": "recipes and meal ideas",
    "fitness": "training and fitness advice",
    "health": "health and wellbeing questions",
    "travel": "travel planning",
    "career": "work and career advice",
    "finance": "budgeting and money questions",
    "family": "family and everyday life advice",
    "languages": "language learning and translation",
    "music": "music practice",
    "reading": "books and ideas",
    "planning": "planning and organizing",
}
_THEME_ROLES = {
    "coding": "Code Companion",
    "writing": "Writing Partner",
    "cooking": "Kitchen Confidant",
    "fitness": "Training Partner",
    "health": "Wellbeing Ally",
    "travel": "Travel Scout",
    "career": "Career Strategist",
    "finance": "Money Mentor",
    "family": "Family Ally",
    "languages": "Language Coach",
    "music": "Practice Buddy",
    "reading": "Reading Companion",
    "planning": "Planning Partner",
    "": "Everyday Sidekick",
}
_THEME_NAMES = {
    "coding": ("Cipher", "Vector", "Pixel", "Cobalt", "Circuit"),
    "writing": ("Quill", "Muse", "Sonnet", "Inkwell", "Verse"),
    "cooking": ("Saffron", "Basil", "Clove", "Nutmeg"),
    "fitness": ("Stride", "Pulse", "Summit", "Ember"),
    "health": ("Juniper", "Haven", "Willow", "Sage"),
    "travel": ("Compass", "Voyager", "Meridian", "Atlas"),
    "career": ("Beacon", "Keystone", "Anchor", "Vantage"),
    "finance": ("Ledger", "Sterling", "Penny"),
    "family": ("Hearth", "Juniper", "Maple"),
    "languages": ("Rosetta", "Lingo", "Babel"),
    "music": ("Cadence", "Lyra", "Harmony"),
    "reading": ("Folio", "Marginalia", "Sage"),
    "planning": ("Tempo", "Orbit", "Kairos", "Atlas"),
    "": ("Echo", "Wren", "Kestrel", "Nova", "Iris"),
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _theme_scores(evidence: ProfileEvidence) -> list[tuple[str, int]]:
    keywords = evidence.keywords
    scores: dict[str, int] = {}
    for theme, words in _THEMES.items():
        scores[theme] = sum(keywords.get(word, 0) for word in words)
    scores["coding"] += 2 * evidence.user_code
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    floor = max(2, evidence.user_messages // 50)
    return [(theme, score) for theme, score in ranked if score >= floor]


def _languages(evidence: ProfileEvidence) -> list[str]:
    """Languages the person writes in, most used first (by messages)."""
    n = evidence.user_messages
    floor = max(2, math.ceil(n * 0.02)) if n >= 10 else 1
    counts: Counter[str] = Counter()
    for language, messages in evidence.language_messages.items():
        counts[language] = messages
    for script, messages in evidence.script_messages.items():
        language = _SCRIPT_LANGUAGE.get(script)
        if language is not None:
            counts[language] = max(counts[language], messages)
    if "Japanese" in counts and "Chinese" in counts:
        # Japanese text mixes kanji with kana; kanji alone is more likely Chinese
        counts["Chinese"] = max(0, counts["Chinese"] - counts["Japanese"])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [language for language, messages in ranked if messages >= floor]


def _relationships(evidence: ProfileEvidence, facts: list[str]) -> list[str]:
    counts: Counter[tuple[str, str]] = Counter(evidence.relations)
    for sentence in facts:
        for rel, name in _find_relations(sentence):
            counts[(rel, name)] += 3  # stated in a profile signal: weigh it more
    by_relation: dict[str, Counter[str]] = {}
    for (rel, name), count in counts.items():
        by_relation.setdefault(rel, Counter())[name] += count
    ranked = sorted(by_relation.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    out: list[str] = []
    for rel, names in ranked[:6]:
        named = sorted(
            ((name, n) for name, n in names.items() if name), key=lambda item: (-item[1], item[0])
        )
        out.append(f"{named[0][0]} ({rel})" if named else rel)
    return out


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


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
        return [_THEME_LABELS[theme] for theme in self.themes[:count]]


def _read(evidence: ProfileEvidence) -> _Reading:
    n = evidence.user_messages
    custom = evidence.custom_instructions
    facts = _fact_sentences(custom + evidence.memories)
    instructions = _instructions(custom[0]) if custom else []
    name = _first_match(_NAME_PATTERNS, facts, _name_ok)
    location = _first_match(_LOCATION_PATTERNS, facts, _location_ok)
    occupation = _first_match(_OCCUPATION_PATTERNS, facts, _occupation_ok)
    personal = _personal_facts(facts, (name, location, occupation))
    preferences = [fact for fact in personal if "prefer" in fact.lower()]
    themes = [theme for theme, _ in _theme_scores(evidence)]
    code_rate = _share(evidence.user_code, n)
    return _Reading(
        evidence=evidence,
        n=n,
        instructions=instructions,
        no_emoji_asked=any(re.search(r"(?i)\bno emoji", s) for s in instructions + facts),
        name=name,
        address=_first_match((_ADDRESS_RE,), facts, lambda _p, _v: True),
        location=location,
        occupation=occupation,
        relationships=_relationships(evidence, facts),
        preferences=preferences,
        other_facts=[fact for fact in personal if fact not in preferences],
        themes=themes,
        dominant=themes[0] if themes else "",
        languages=_languages(evidence),
        keywords=[word for word, _ in evidence.top_keywords(40, 2 if n >= 20 else 1)],
        q_rate=_share(evidence.questions, n),
        polite_rate=_share(evidence.polite, n),
        emoji_rate=_share(evidence.emoji_messages, n),
        exclaim_rate=_share(evidence.exclaims, n),
        laugh_rate=_share(evidence.laughs, n),
        feeling_rate=_share(evidence.feelings, n),
        lower_rate=_share(evidence.lowercase_starts, n),
        image_rate=_share(evidence.user_images, n),
        long_rate=_share(evidence.long_messages, n),
        median_len=evidence.user_lengths.median,
        coding="coding" in themes[:3] or code_rate >= 0.03,
        research=_share(evidence.tether_quotes, max(evidence.conversations, 1)) >= 0.02,
    )


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
    traits = [trait for trait, holds in candidates if holds][:7]
    for fallback in ("inquisitive", "self-directed", "pragmatic"):
        if len(traits) >= 3:
            break
        if fallback not in traits:
            traits.append(fallback)
    return traits


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
    ai_name = _pick(_THEME_NAMES[r.dominant], digest)
    identity: dict[str, Any] = {"ai_name": ai_name}
    if r.n:
        adjective = traits[0].split()[0].split("-")[0].capitalize()
        identity["archetype"] = f"{adjective} {_THEME_ROLES[r.dominant]}"
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
            follow = f"What's on your mind, {_THEME_LABELS[r.dominant]} or something new?"
        else:
            follow = "What are we working on today?"
        identity["signature_greeting"] = f"{hello}{name}! {ai_name} here. {follow}"
    return identity


def _user(r: _Reading) -> dict[str, Any]:
    evidence = r.evidence
    interests = r.theme_labels(4)
    covered = set().union(*(_THEMES[theme] for theme in r.themes[:4]))
    mentioned = {name.lower() for (_, name) in evidence.relations if name}
    for word in r.keywords:
        if len(interests) >= 10:
            break
        if word not in mentioned and word not in covered and word not in interests:
            interests.append(word)

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
            context.append(f"most active around {hour:02d}:00 UTC, busiest on {_WEEKDAYS[day]}s")
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

    rules: list[str] = []
    if r.instructions:
        rules.append(f"Follow the person's standing instruction: {r.instructions[0]}")
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
        rules += [rule for rule, holds in candidates if holds]
        for fallback in (
            "Ask one clarifying question when a request is ambiguous",
            "Be honest about uncertainty instead of guessing",
            "Suggest a concrete next step at the end of advice",
        ):
            if len(rules) >= 3:
                break
            rules.append(fallback)
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
        if _THEME_USAGE[theme] not in usage:
            usage.append(_THEME_USAGE[theme])

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
    questions, politeness, emoji, laughter, feelings, languages), interests from the topics
    their most frequent keywords suggest and the keywords themselves, usage from content types
    (code, images, browsing, code execution) and topics, depth from the assistant's answer
    lengths, the AI's name from a themed list, picked by a hash of the evidence. Name,
    location and occupation are read only where custom instructions or memories state them
    plainly ("my name is X", "I live in X", "I am a X", "User works as a X"). Without evidence
    a field is ``NOT_ENOUGH_DATA`` or ``[]`` (the validation fills what a builder leaves
    out). The result passes :func:`validate_sections`.
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


def evidence_summary(evidence: ProfileEvidence) -> dict[str, int | float | str]:
    """Counts and rates about the evidence, for run metadata and logs.

    No text of the person's at all: no keywords, names or instructions, only numbers and
    fixed labels (a script name, a weekday).
    """
    n = evidence.user_messages
    summary: dict[str, int | float | str] = {
        "batches": evidence.batches,
        "rows": evidence.rows,
        "conversations": evidence.conversations,
        "user_messages": n,
        "assistant_messages": evidence.assistant_messages,
        "tool_messages": evidence.tool_messages,
        "custom_instructions": evidence.custom_instruction_rows,
        "memories": evidence.memory_rows,
        "user_chars_mean": round(evidence.user_lengths.mean, 1),
        "user_chars_median": evidence.user_lengths.median,
        "assistant_chars_mean": round(evidence.assistant_lengths.mean, 1),
        "assistant_chars_median": evidence.assistant_lengths.median,
        "question_rate": round(_share(evidence.questions, n), 4),
        "politeness_rate": round(_share(evidence.polite, n), 4),
        "emoji_rate": round(_share(evidence.emoji_messages, n), 4),
        "emoji_total": evidence.emoji_total,
        "user_code_messages": evidence.user_code,
        "user_images": evidence.user_images,
        "long_user_messages": evidence.long_messages,
        "code_rows": evidence.code_rows,
        "execution_outputs": evidence.execution_outputs,
        "tether_quotes": evidence.tether_quotes,
        "generated_images": evidence.generated_images,
        "distinct_keywords": len(evidence.keywords),
        "keyword_prunes": evidence.keyword_prunes,
        "scripts": len(evidence.script_messages),
    }
    if evidence.script_messages:
        summary["dominant_script"] = max(
            sorted(evidence.script_messages), key=lambda s: evidence.script_messages[s]
        )
    if sum(evidence.hours):
        summary["peak_hour_utc"] = max(range(24), key=lambda h: (evidence.hours[h], -h))
        summary["peak_weekday"] = _WEEKDAYS[max(range(7), key=lambda d: (evidence.weekdays[d], -d))]
    return summary

"""The evidence: bounded statistics about one person, streamed from their message rows.

:class:`ProfileEvidence` accumulates counts, rates, length histograms, activity by hour and
weekday, scripts and languages, keywords, the people and pets mentioned, and the profile
signals (custom instructions and memories) from ``rows.SCHEMA`` record batches, in memory that
does not grow with the export::

    evidence = ProfileEvidence()
    for batch in ExportReader(url).batches():
        evidence.add(batch)
    evidence_summary(evidence)                     # counts and rates only, never text

Times are UTC (exports carry no time zone), and languages are told apart by Unicode script
plus a few common function words.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export.rows import CUSTOM_INSTRUCTIONS, MEMORY, UTC_MICROS
from soulprint_pipeline.soulprint.sections import _words
from soulprint_pipeline.soulprint.signals import StatedFacts

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
    r"|nervous|sad|lonely|happy|excited|frustrated|tired|exhausted|scared|upset)\b"
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
NOT_NAMES = _words(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "May June July August September October November December I The And But"
)

#: The weekdays in the order of :attr:`ProfileEvidence.weekdays` (Monday first).
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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
        self.stated = StatedFacts()  # what the person says about themselves, dated
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
        self.stated.add(batch)

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
        when = _utc_micros(rows.column("created_at"))
        if "conversation_created_at" in rows.schema.names:
            # a custom-instructions row has no time of its own: its conversation's is when it held
            when = pc.coalesce(when, _utc_micros(rows.column("conversation_created_at")))
        times = pc.cast(when, pa.int64()).to_pylist()
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
            for rel, name in find_relations(text):
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


def find_relations(text: str) -> Iterable[tuple[str, str]]:
    """The (relation, name) pairs ``text`` mentions ("my sister Ana"); name "" when unnamed."""
    for match in _RELATION_RE.finditer(text):
        rel = match.group("rel").lower()
        name = match.group("name") or ""
        if name in NOT_NAMES:
            name = ""
        yield rel, name


def languages(evidence: ProfileEvidence) -> list[str]:
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


def share(part: int, whole: int) -> float:
    """``part / whole``, or 0.0 when there is no whole (a rate over no messages)."""
    return part / whole if whole else 0.0


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
        "question_rate": round(share(evidence.questions, n), 4),
        "politeness_rate": round(share(evidence.polite, n), 4),
        "emoji_rate": round(share(evidence.emoji_messages, n), 4),
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
        summary["peak_weekday"] = WEEKDAYS[max(range(7), key=lambda d: (evidence.weekdays[d], -d))]
    return summary

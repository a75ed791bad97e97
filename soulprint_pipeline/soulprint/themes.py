"""The topic themes: which keywords suggest which interests, and how each theme is named.

A theme scores the document frequency of its keywords in the person's messages
(:func:`theme_scores`); its label names it as an interest, its usage as a way of using the
assistant, its role and names give the AI an archetype and a name that fit.
"""

from __future__ import annotations

from soulprint_pipeline.soulprint.evidence import ProfileEvidence
from soulprint_pipeline.soulprint.sections import _words

THEMES: dict[str, frozenset[str]] = {
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
THEME_LABELS = {
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
THEME_USAGE = {
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
THEME_ROLES = {
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
THEME_NAMES = {
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


def theme_scores(evidence: ProfileEvidence) -> list[tuple[str, int]]:
    """The themes scoring above a floor (that grows with the messages), strongest first."""
    keywords = evidence.keywords
    scores: dict[str, int] = {}
    for theme, words in THEMES.items():
        scores[theme] = sum(keywords.get(word, 0) for word in words)
    scores["coding"] += 2 * evidence.user_code
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    floor = max(2, evidence.user_messages // 50)
    return [(theme, score) for theme, score in ranked if score >= floor]

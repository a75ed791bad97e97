"""The topic themes: which keywords suggest which interests, and how each theme is named.

A theme scores the document frequency of its keywords in the person's messages
(:func:`theme_scores`); its label names it as an interest, its usage as a way of using the
assistant, its role and names give the AI an archetype and a name that fit.
"""

from __future__ import annotations

from soulprint_pipeline.soulprint.evidence import ProfileEvidence
from soulprint_pipeline.soulprint.sections import _words

#: Words specific enough to name a topic: generic ones ("list", "error", "file", "email",
#: "draft") come up in any chat and once made every person a "Writing Partner". English, with
#: the Spanish and French words of the same topics.
THEMES: dict[str, frozenset[str]] = {
    "coding": _words(
        "python code function regex sql api database javascript bug script git docker "
        "kubernetes terraform bash deploy compile debug programming json csv typescript"
    ),
    "writing": _words(
        "writing essay proofread blog story poem grammar novel rewrite manuscript "
        "escribir ensayo cuento écrire rédaction"
    ),
    "cooking": _words(
        "recipe dinner dinners cook cooking risotto paella sourdough bread flour bake baking "
        "breakfast meal meals dough food kitchen cake vegetarian receta recetas cena cocina "
        "cocinar garbanzos recette cuisine dîner repas végétarienne"
    ),
    "fitness": _words(
        "run running race workout training stretch knee injury exercise gym hiking fitness "
        "marathon hamstrings muscles correr entrenamiento gimnasio entraînement randonnée"
    ),
    "health": _words(
        "sleep asleep health doctor diet stress anxiety symptoms therapy wellbeing dormir "
        "sueño salud médico sommeil santé"
    ),
    "travel": _words(
        "travel trip voyage flight hotel lisbon japan tokyo paris itinerary vacation holiday "
        "viaje vacaciones vuelo vacances itinéraire"
    ),
    "career": _words(
        "job manager career interview meeting promotion transfer resume colleague boss "
        "startup quarterly trabajo turno turnos supervisora jefe travail réunion"
    ),
    "finance": _words(
        "budget money mortgage expenses savings rent invest investing fund spreadsheet tax "
        "taxes salary groceries loan invoice presupuesto ahorro dinero budget épargne"
    ),
    "family": _words(
        "daughter son wife husband family kids children sister brother wedding grandma "
        "parents baby dog cat pet hijo hija hermano hermana familia perro fille fils famille"
    ),
    "languages": _words(
        "french spanish japanese german english chinese italian translate translation "
        "vocabulary language languages pronunciation idioma traducir traduire langue"
    ),
    "music": _words(
        "piano guitar song songs music chords scales sing band ukulele ukelele acordes "
        "canción chanson chorale chant répétition"
    ),
    "reading": _words("book books novel reading author chapter literature poetry libro livre"),
    "planning": _words(
        "planning schedule pomodoro productivity goals routine organize habit deadline "
        "calendar organizar horario organiser"
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

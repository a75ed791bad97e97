"""The invented text and data a synthetic export is made of, and the corpus built from them.

:mod:`soulprint_pipeline.testing.synthetic` draws every string it writes from here: message text
is sliced from :func:`pool`, a corpus of about 1.5 million characters assembled (once per
process, from a fixed seed) out of the sentence pools below: mostly English, with French,
Spanish, German, Portuguese, Polish, Chinese, Japanese, Korean, Arabic, Russian, Hindi, Greek
and Turkish, emoji (including ZWJ sequences and a flag), markdown headings, lists and code
fences. The other pools fill the parts of a conversation that are not free text: titles,
openers, memory facts, python tool calls and their output, browsing results, reasoning recaps,
the model slugs of each era and the ``chat.html`` placed beside ``conversations.json``.

All of it is invented for this generator: the people, pets, places and numbers are made up and
nothing is taken from anyone's real export, so a generated file holds no personal data. What
follows real exports is the shape (see ``synthetic``), plus the public model slugs and the
addresses of well-known public sites, which are only ever written as strings, never fetched.

Changing any pool, or the order of the random draws in :func:`pool`, changes every generated
export for a given seed.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CHAT_HTML",
    "CODE_SNIPPETS",
    "FACTS",
    "MODELS_BY_ERA",
    "NEWEST_TIME",
    "OLDEST_TIME",
    "PASTE_OPENERS",
    "REASONING_MODELS",
    "RECAPS",
    "SITES",
    "THOUGHT_SUMMARIES",
    "TITLES",
    "USER_OPENERS",
    "VISIBLE_CODE",
    "Pool",
    "pool",
]

# --------------------------------------------------------------------------- sentences
# Only pool() reads these four: messages are slices of the corpus it builds from them.

_EN: list[str] = [
    "Can you help me plan a week of healthy dinners for two adults and a picky seven-year-old?",
    "I have been feeling stuck at work lately and I am not sure whether to ask for a transfer.",
    "My dog Biscuit keeps barking at the mail carrier every single morning around nine.",
    "The quarterly report is due on Friday and I still have to reconcile three spreadsheets.",
    "Here is a short summary of the main arguments, followed by a few counterpoints.",
    "First, make sure the virtual environment is activated before you install anything.",
    "It sounds like you are dealing with a lot right now, and that is completely understandable.",
    "The function returns None because the loop exits before the return statement is reached.",
    "A good rule of thumb is to keep your emergency fund at three to six months of expenses.",
    "I ran 5.2 km this morning in 31 minutes, which is my best time since the knee injury.",
    "We are thinking about moving to Lisbon next spring, mostly for the weather and the food.",
    "Could you rewrite this paragraph so it sounds more confident but still friendly?",
    "Sourdough needs a lively starter, so feed it twelve hours before you mix the dough.",
    "The main difference between a list and a tuple is that tuples are immutable.",
    "My sister's wedding is in June and I was asked to give a short toast at the dinner.",
    "To reduce latency, cache the results and batch the database writes every few seconds.",
    "Honestly, I think the second option is better because it leaves room to change course.",
    "Remember to stretch your hamstrings and hip flexors after long hours at the desk.",
    "In the novel, the lighthouse stands for everything the family cannot say to each other.",
    "The error usually means the certificate chain is incomplete on the server side.",
    "I want to learn to play the piano properly, starting with scales and simple chords.",
    "Let us break the problem into smaller steps and check each assumption along the way.",
    "A balanced breakfast could be oatmeal with berries, a boiled egg and a cup of green tea.",
    "My daughter Maya asked me why the sky is blue and I realised I could not explain it.",
    "You can use a context manager so that the file is always closed, even on errors.",
    "The meeting ran long again, and we still did not decide who owns the migration.",
    "Here is a polite email declining the invitation while keeping the door open.",
    "Rayleigh scattering makes shorter blue wavelengths bounce around the atmosphere more.",
    "I keep waking up at 3 a.m. and then I cannot fall back asleep for an hour or two.",
    "The budget spreadsheet shows that groceries went up by almost twenty percent this year.",
    "Consider adding an index on the user_id column, since every query filters on it.",
    "Thanks, that worked perfectly! Now can you explain why the original version failed?",
    "We adopted a cat named Miso last month and she already rules the whole apartment.",
    "If you want a gentler tone, replace 'you must' with 'it might help to'.",
    "The pipeline reads the file in chunks so memory stays flat even for huge inputs.",
    "I am writing a cover letter for a product manager role at a climate tech startup.",
    "Gradually increase the load by about ten percent per week to avoid injuries.",
    "Could you give me three title ideas for a blog post about slow travel in Japan?",
    "The trick with risotto is to add the stock slowly and keep stirring the whole time.",
    "Let me know if you would like a more detailed breakdown of any of these steps.",
    "I was born in a small town by the sea and I still miss the sound of the waves.",
    "My manager wants weekly status updates, so I need a simple template for them.",
    "That is a great question, and the answer depends a lot on your long-term goals.",
    "Try the Pomodoro technique: twenty-five minutes of focus followed by a short break.",
    "The regex fails because the dot does not match newlines unless you enable DOTALL.",
    "Grandma's recipe calls for two cups of flour, one egg and a pinch of cardamom.",
    "I would recommend starting with a small pilot before rolling it out to everyone.",
    "The apartment has great light, but the kitchen is tiny and the rent is steep.",
    "We should meet halfway: you handle the frontend and I will take care of the API.",
    "Anyway, I just wanted to say thank you, this conversation really helped me today.",
]

_OTHER: list[str] = [
    "Je voudrais améliorer mon français avant notre voyage à Montréal cet été.",
    "Peux-tu m'expliquer la différence entre « déjà » et « encore » ?",
    "Le café était délicieux, mais la pâtisserie était beaucoup trop sucrée à mon goût.",
    "¿Cómo puedo preparar una paella sin que el arroz se queme en el fondo?",
    "Mañana tengo una entrevista de trabajo y estoy un poco nervioso, la verdad.",
    "Mi abuela siempre decía que la paciencia es la madre de la ciencia.",
    "Könntest du mir bitte die Grammatik der Nebensätze noch einmal erklären?",
    "Übermorgen fahre ich mit dem Zug nach München, um meine Großeltern zu besuchen.",
    "Não sei se devo aceitar a proposta de emprego em Lisboa ou ficar no Porto.",
    "Mój przyjaciel poleca tę książkę, ale nie jestem pewien, czy mi się spodoba.",
    "我想学习如何更好地管理我的时间，尤其是在工作日的晚上。",
    "请帮我把这段话翻译成英文，语气要正式一点。",
    "今天的天气很好，我们下午去公园散步吧。",
    "日本語の敬語がまだよく分かりません。例を教えてください。",
    "東京で一番おいしいラーメン屋はどこですか？",
    "오늘 회의 내용을 세 줄로 요약해 주세요.",
    "كيف يمكنني تحسين مهاراتي في الكتابة باللغة الإنجليزية؟",
    "أحب القراءة في المساء مع فنجان من الشاي بالنعناع.",
    "Помоги мне составить план тренировок на неделю для начинающего.",
    "मुझे अपनी बेटी के जन्मदिन के लिए एक छोटी कविता लिखनी है।",
    "Ελπίζω να τα πούμε σύντομα, καλή σου μέρα!",
    "Bu akşam ne pişirsem bilmiyorum, bir önerin var mı?",
]

_EMOJI: list[str] = [
    "😊",
    "🚀",
    "👍",
    "🎉",
    "🤔",
    "❤️",
    "🙏",
    "😅",
    "🔥",
    "✨",
    "🐶",
    "☕",
    "👨‍👩‍👧",
    "🇫🇷",
    "🌱",
    "📚",
    "💡",
    "😂",
    "🥲",
    "✅",
]

_HEADINGS: list[str] = [
    "## Summary",
    "### Step-by-step",
    "## Key points",
    "### Option A vs. option B",
    "## Next steps",
    "### Ingredients",
    "## Résumé",
    "### 要点",
]

# --------------------------------------------------------------------------- conversation parts

#: (code, output) pairs for the python tool: a code message and its execution_output.
CODE_SNIPPETS: list[tuple[str, str]] = [
    (
        "import pandas as pd\n\ndf = pd.read_csv('budget.csv')\n"
        "print(df.groupby('category')['amount'].sum().sort_values())",
        "category\nfun          120.50\ntransport    310.00\nrent        1450.00\nName: amount",
    ),
    (
        "from datetime import date\n\ndelta = date(2025, 6, 14) - date.today()\nprint(delta.days)",
        "187",
    ),
    ("sum(x * x for x in range(1, 101))", "338350"),
    (
        "import math\nrate = 0.045 / 12\npayment = 250000 * rate / (1 - (1 + rate) ** -360)\n"
        "round(payment, 2)",
        "1266.71",
    ),
    (
        "words = open('/mnt/data/essay.txt').read().split()\nlen(words), len(set(words))",
        "(1843, 702)",
    ),
    ("import statistics\nstatistics.mean([31.2, 29.8, 30.5, 28.9, 32.0])", "30.48"),
    (
        "import matplotlib.pyplot as plt\nplt.plot([5.2, 5.8, 6.1, 7.0])\n"
        "plt.savefig('/mnt/data/runs.png')",
        "<<ImageDisplayed>>",
    ),
    (
        "sorted({'banana': 3, 'apple': 7, 'cherry': 1}.items(), key=lambda kv: -kv[1])",
        "[('apple', 7), ('banana', 3), ('cherry', 1)]",
    ),
]

#: (language, code) the assistant shows as a visible code message (also fenced in the corpus).
VISIBLE_CODE: list[tuple[str, str]] = [
    (
        "python",
        "def greet(name: str) -> str:\n    return f\"Hello, {name}!\"\n\nprint(greet('Maya'))",
    ),
    ("javascript", "const total = items.reduce((sum, item) => sum + item.price, 0);"),
    (
        "bash",
        "python -m venv .venv && source .venv/bin/activate && pip install -r requirements.txt",
    ),
    ("sql", "SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id ORDER BY n DESC LIMIT 10;"),
]

#: (url, domain, page title) a browsing tool call quotes and cites.
SITES: list[tuple[str, str, str]] = [
    (
        "https://en.wikipedia.org/wiki/Rayleigh_scattering",
        "en.wikipedia.org",
        "Rayleigh scattering - Wikipedia",
    ),
    (
        "https://www.seriouseats.com/perfect-risotto",
        "www.seriouseats.com",
        "The Food Lab: Perfect Risotto",
    ),
    (
        "https://docs.python.org/3/library/contextlib.html",
        "docs.python.org",
        "contextlib — Utilities for with-statement contexts",
    ),
    (
        "https://www.nhs.uk/live-well/sleep-and-tiredness/",
        "www.nhs.uk",
        "Sleep and tiredness - NHS",
    ),
    (
        "https://www.lonelyplanet.com/portugal/lisbon",
        "www.lonelyplanet.com",
        "Lisbon travel guide - Lonely Planet",
    ),
    (
        "https://www.runnersworld.com/training/a20811257/",
        "www.runnersworld.com",
        "How to build mileage safely",
    ),
]

#: Conversation titles.
TITLES: list[str] = [
    "Healthy dinner plan",
    "Career crossroads",
    "Dog barking advice",
    "Quarterly report help",
    "Python list vs tuple",
    "Wedding toast ideas",
    "Reduce API latency",
    "Sleep problems",
    "Budget review 2024",
    "Cover letter draft",
    "Sourdough starter tips",
    "Moving to Lisbon",
    "Risotto technique",
    "Regex DOTALL issue",
    "Piano practice plan",
    "Blog titles Japan",
    "Paella sans brûler",
    "Préparer le voyage à Montréal",
    "Entrevista de trabajo",
    "Nebensätze erklärt",
    "时间管理技巧",
    "敬語の使い方",
    "회의 요약",
    "تحسين الكتابة",
    "План тренировок",
    "Why is the sky blue? 🌈",
    "Cat named Miso 🐱",
    "Email decline invite",
    "SQL index question",
    "Mortgage calculation",
    "Running progress 🏃",
    "Weekly status template",
    "New chat",
    "Untitled",
    "Grandma's cardamom cake",
    "Knee injury recovery",
]

#: What a user message may begin with (mostly nothing).
USER_OPENERS: list[str] = [
    "",
    "",
    "",
    "",
    "",
    "Quick question: ",
    "Can you help me with this? ",
    "Hmm, ",
    "Okay so ",
    "Traduis en anglais : ",
    "帮我看看：",
    "Follow-up: ",
    "One more thing — ",
]

#: What precedes a long pasted document in a user message.
PASTE_OPENERS: list[str] = [
    "Can you summarize this document for me?\n\n",
    "Please proofread the following and fix any grammar mistakes:\n\n",
    "Here is my essay draft, what do you think?\n\n",
    "Translate this into plain English:\n\n",
    "I'm pasting the meeting notes below. Extract the action items.\n\n",
    "",
]

#: Facts about the user: memory writes, custom instructions, model_editable_context.
FACTS: list[str] = [
    "User likes hiking on weekends.",
    "User has a dog named Biscuit.",
    "User is learning Japanese.",
    "User prefers concise answers with bullet points.",
    "User's daughter is called Maya and is seven years old.",
    "User lives near Lisbon.",
    "User is vegetarian.",
    "User works as a data engineer.",
    "User is training for a 10K race.",
    "User enjoys baking sourdough bread.",
    "Prefers metric units.",
]

#: The reasoning_recap that ends a reasoning model's thoughts.
RECAPS: list[str] = [
    "Thought for 5 seconds",
    "Thought for 12 seconds",
    "Thought for 1m 3s",
    "Thought for a couple of seconds",
    "Worked for 9s",
]

#: Summaries of a reasoning model's thoughts.
THOUGHT_SUMMARIES: list[str] = [
    "Weighing the options",
    "Checking the numbers",
    "Considering the user's goal",
    "Planning the answer",
    "Recalling the relevant facts",
]

# --------------------------------------------------------------------------- models and time

#: (until, model slugs): a conversation started before ``until`` (a Unix time) draws its model
#: from the first era it fits; a slug listed twice is drawn twice as often.
MODELS_BY_ERA: list[tuple[int, list[str]]] = [
    (1683000000, ["text-davinci-002-render-sha", "text-davinci-002-render-sha", "gpt-4"]),
    (1715000000, ["text-davinci-002-render-sha", "gpt-4", "gpt-4", "gpt-4-gizmo"]),
    (1735700000, ["gpt-4o", "gpt-4o", "gpt-4o-mini", "o1-preview", "o1-mini"]),
    (1754600000, ["gpt-4o", "gpt-4o", "o3", "o4-mini", "gpt-4-5"]),
    (1 << 40, ["gpt-5", "gpt-5", "gpt-5-thinking", "gpt-5-instant", "gpt-5-t-mini"]),
]
#: The slugs above whose answers may come with thoughts and a reasoning recap.
REASONING_MODELS: frozenset[str] = frozenset(
    {"o1-preview", "o1-mini", "o3", "o4-mini", "gpt-5", "gpt-5-thinking", "gpt-5-t-mini"}
)

#: Conversations are dated going back from NEWEST_TIME, never before OLDEST_TIME.
NEWEST_TIME = 1767225600.0  # 2026-01-01
OLDEST_TIME = 1669900000.0  # launch of ChatGPT, Dec 2022

#: The chat.html member of a zip export.
CHAT_HTML = (
    '<!DOCTYPE html>\n<html>\n<head><meta charset="UTF-8"><title>ChatGPT Data Export</title>'
    '</head>\n<body>\n<div id="root"></div>\n<script>\n'
    "// Synthetic export: a real chat.html embeds every conversation as jsonData.\n"
    "var jsonData = [];\n</script>\n</body>\n</html>\n"
)


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Pool:
    """The corpus messages are sliced from, and where its sentences start."""

    corpus: str  # a large mixed-language markdown-ish text; messages are slices of it
    size: int
    starts: array  # offsets of sentence starts in corpus (slices begin there)


@lru_cache(maxsize=1)
def pool() -> Pool:
    """Build (once per process) the text corpus every generator slices messages from."""
    rng = random.Random(0x50_75_1F)
    paragraphs: list[str] = []
    starts = array("I")
    total = 0
    while total < 1_500_000:
        roll = rng.random()
        source = _EN if roll < 0.78 else _OTHER
        sentences = [rng.choice(source) for _ in range(rng.randint(2, 6))]
        if rng.random() < 0.15:
            sentences[-1] += " " + rng.choice(_EMOJI)
        shape = rng.random()
        if shape < 0.10:
            paragraph = "\n".join(f"- {s}" for s in sentences)
        elif shape < 0.16:
            paragraph = "\n".join(f"{i}. **{s}**" for i, s in enumerate(sentences, 1))
        elif shape < 0.21:
            paragraph = rng.choice(_HEADINGS) + "\n\n" + " ".join(sentences)
        elif shape < 0.25:
            language, code = rng.choice(VISIBLE_CODE)
            paragraph = " ".join(sentences) + f"\n\n```{language}\n{code}\n```"
        else:
            paragraph = " ".join(sentences)
        position = 0
        for sentence in sentences:
            position = paragraph.index(sentence, position)
            starts.append(total + position)
            position += len(sentence)
        paragraphs.append(paragraph)
        total += len(paragraph) + 2
    corpus = "\n\n".join(paragraphs)
    return Pool(corpus=corpus, size=len(corpus), starts=starts)

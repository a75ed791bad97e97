"""The planted-persona eval on small personas: the soulprint knows the person (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soulprint_pipeline.testing.eval import (
    TARGET_INPUT,
    TARGET_OFFLINE,
    PersonaScore,
    report,
    run,
)
from soulprint_pipeline.testing.personas import PERSONAS, SOURCES

SMALL = 150  # conversations per persona: a CI-sized export (make eval runs 2,000)


@pytest.fixture(scope="module")
def scores() -> list[PersonaScore]:
    return run(SMALL)


def test_every_persona_has_facts_from_every_source(scores: list[PersonaScore]) -> None:
    assert len(scores) == len(PERSONAS) >= 4
    for score in scores:
        assert set(score.sources) == set(SOURCES)
        assert all(counts.planted >= 2 for counts in score.sources.values()), score.persona


def test_offline_finds_the_planted_facts_in_the_right_field(scores: list[PersonaScore]) -> None:
    planted = sum(score.planted for score in scores)
    found = sum(score.offline for score in scores)
    assert found >= TARGET_OFFLINE * planted, report(scores)
    assert [score.wrong for score in scores] == [[]] * len(scores), report(scores)
    assert [score.junk_interests for score in scores] == [[]] * len(scores), report(scores)


def test_the_model_input_holds_the_planted_facts_mostly_the_persons_words(
    scores: list[PersonaScore],
) -> None:
    planted = sum(score.planted for score in scores)
    assert sum(score.in_input for score in scores) >= TARGET_INPUT * planted, report(scores)
    for score in scores:
        tokens = score.input_tokens
        assert tokens["candidate_facts"] > 0 and tokens["tool"] == 0
        assert tokens["user"] > tokens["assistant"], score.persona


def test_the_command_prints_the_figures_per_persona_and_source() -> None:
    command = [sys.executable, "-m", "soulprint_pipeline.testing.eval", "--conversations", "60"]
    done = subprocess.run(
        [*command, "--persona", "claire_fr", "--json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr  # 0: on target
    (figures,) = json.loads(done.stdout)
    assert figures["persona"] == "claire_fr" and set(figures["sources"]) == set(SOURCES)
    wrong = subprocess.run([*command[:-1], "5"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr

"""The planted-persona eval on small personas: the soulprint knows the person (issue 11)."""

from __future__ import annotations

import pytest

from soulprint_pipeline.testing.eval import (
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

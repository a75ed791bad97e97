"""The spill file: texts past the budget wait on disk, read ahead conversations keep theirs."""

from __future__ import annotations

from soulprint_pipeline.export.spill import TextSpill


def test_texts_past_the_budget_wait_on_disk_until_released() -> None:
    spill = TextSpill(budget_chars=10)
    spill.begin(1)
    held, spilled = spill.keep("short"), spill.keep("past the budget")
    assert held == b"short" and spill.text(spilled) == "past the budget"
    assert spill.spilled_bytes == len("past the budget")
    spill.release(1)
    assert spill.spilled_bytes == 0
    spill.close()


def test_a_conversation_read_ahead_keeps_its_texts_when_the_one_before_is_released() -> None:
    spill = TextSpill(budget_chars=0)  # every text spills
    spill.begin(1)
    first = spill.keep("first conversation")
    spill.begin(2)  # the parser reads into the next conversation before the first is batched
    second = spill.keep("second conversation")
    assert spill.text(first) == "first conversation"
    spill.release(1)
    assert spill.text(second) == "second conversation"  # not truncated under it
    spill.begin(3)
    spill.release(2)  # the third has spilled nothing: the file can be emptied
    assert spill.spilled_bytes == 0
    third = spill.keep("third")
    assert spill.text(third) == "third"
    spill.release(3)
    assert spill.spilled_bytes == 0
    spill.close()


def test_a_conversation_that_never_began_releases_nothing() -> None:
    spill = TextSpill(budget_chars=0)
    spill.begin(1)
    kept = spill.keep("still needed")
    spill.release(99)  # e.g. an item that was not an object
    assert spill.text(kept) == "still needed"
    spill.close()

"""Job and upload ids can be typed after a command: none starts with "-"."""

from __future__ import annotations

from orchestrator.ids import ID_PATTERN, new_id


def test_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    # 20,000 draws: with a "-" or "_" first one time in 32, a plain token would fail ~625 times.
    ids = [new_id() for _ in range(20_000)]
    assert all(ID_PATTERN.fullmatch(i) for i in ids)
    assert not [i for i in ids if i[0] in "-_"]
    assert len(set(ids)) == len(ids)
    assert len({i[0] for i in ids}) == 62  # every letter and digit still begins some id


def test_ids_issued_before_the_rule_still_match() -> None:
    assert ID_PATTERN.fullmatch("-" + "A" * 21)

"""The survey score rules, exhaustively on small groups: every NPS answer band, every split of
small groups checked against a count made here from the answers themselves, empty groups."""

from __future__ import annotations

import itertools

import pytest

from tasks.surveys.rules.scores import (
    NpsBand,
    Tally,
    csat,
    nps,
    nps_band,
    response_rate,
    scores,
    show,
)


def test_every_nps_score_has_its_band() -> None:
    bands = [nps_band(s) for s in range(11)]
    assert bands[:7] == [NpsBand.DETRACTOR] * 7
    assert bands[7:9] == [NpsBand.PASSIVE] * 2
    assert bands[9:] == [NpsBand.PROMOTER] * 2
    for bad in (-1, 11):
        with pytest.raises(ValueError, match=str(bad)):
            nps_band(bad)


def test_nps_of_every_small_group_of_answers() -> None:
    for size in range(1, 4):
        for answers in itertools.product(range(11), repeat=size):
            promoters = sum(1 for a in answers if a >= 9)
            detractors = sum(1 for a in answers if a <= 6)
            passives = size - promoters - detractors
            expected = round(100 * promoters / size - 100 * detractors / size, 1)
            assert nps(promoters, passives, detractors) == pytest.approx(expected, abs=0.05)


def test_nps_bounds_and_known_values() -> None:
    assert nps(10, 0, 0) == 100.0
    assert nps(0, 0, 3) == -100.0
    assert nps(0, 5, 0) == 0.0  # all passives: a real 0
    assert nps(1, 1, 1) == 0.0
    assert nps(2, 0, 1) == 33.3
    assert nps(1, 0, 2) == -33.3


def test_no_answers_is_no_score_not_zero() -> None:
    assert nps(0, 0, 0) is None
    assert csat(0, 0) is None
    assert response_rate(0, 0) is None
    empty = scores(Tally())
    assert (empty.nps, empty.csat, empty.response_rate) == (None, None, None)
    assert show(None) == "no answers" and show(0.0) == "0.0"


def test_csat_and_response_rate() -> None:
    for answers in itertools.product(range(1, 6), repeat=3):
        satisfied = sum(1 for a in answers if a >= 4)
        assert csat(satisfied, 3) == round(100 * satisfied / 3, 1)
    assert response_rate(0, 7) == 0.0  # invited, nobody answered: a real 0 %
    assert response_rate(7, 7) == 100.0
    assert response_rate(1, 3) == 33.3


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        csat(3, 2)
    with pytest.raises(ValueError):
        response_rate(-1, 2)
    with pytest.raises(ValueError):
        nps(-1, 0, 0)


def test_scores_of_a_tally() -> None:
    found = scores(
        Tally(
            promoters=3,
            passives=1,
            detractors=1,
            csat_satisfied=1,
            csat_answers=2,
            sent=10,
            responses=7,
        )
    )
    assert (found.nps, found.csat, found.response_rate) == (40.0, 50.0, 70.0)
    assert (found.nps_answers, found.csat_answers) == (5, 2)

"""The helper that checks the numbers a text states against measured values."""

import pytest

from tests.claims import stated, states

TEXT = """At $p = 0.05$ an input with five features has no feature active 77 % of the time,
and two or more only 2 %. Head 0.3 puts 0.93 of its attention there, a bias of (−0.26 to
-0.24), after 3,000 steps, within $10^{-5}$."""


def test_numbers_are_read_as_written_across_line_breaks():
    assert stated(TEXT, "two or more only {} %") == [0.02]
    assert stated(TEXT, "time, and two or more") == []
    assert stated(TEXT, "a bias of ({} to {})") == [-0.26, -0.24]
    assert stated(TEXT, "Head {}.{} puts {} of") == [0, 3, 0.93]
    assert stated(TEXT, "after {} steps, within $10^{{}}$") == [3000, -5]
    assert stated(TEXT, "an input with {} features") == [5]


def test_a_measured_value_must_match_to_the_stated_precision():
    states(TEXT, "no feature active {} % of the time", 0.7749)
    states(TEXT, "{} of its attention", [0.925, 0.9349])
    with pytest.raises(AssertionError, match=r'"Head 0.3 puts 0.93 of its" states 0.93, but '
                                             r"the measured value is 0.9400 \(allowed ±0.005"):
        states(TEXT, "Head 0.3 puts {} of its", 0.94)
    with pytest.raises(AssertionError,
                       match=r"states 77, but the measured value is 77.60 % \(allowed ±0.5 %"):
        states(TEXT, "active {} % of", 0.776)
    states(TEXT, "after {} steps", 3010, tolerance=20, reason="logged every 50 steps")
    with pytest.raises(ValueError, match="reason"):
        states(TEXT, "after {} steps", 3010, tolerance=20)


def test_a_missing_phrase_says_what_was_looked_for_and_where():
    with pytest.raises(AssertionError, match=r'(?s)does not state "Head 0\.3 puts \{\} of the '
                                             r'attention".*nearest.*Head 0\.3 puts 0\.93'):
        states(TEXT, "Head 0.3 puts {} of the attention", 0.93)


def test_powers_of_ten_and_number_words():
    text = "AdamW (lr 2·10⁻³ after 100 steps; lr 10⁻³, Seven of the eight"
    assert stated(text, "AdamW (lr {} after {} steps; lr {},") == [0.002, 100, 0.001]
    assert stated(text, "{} of the {}") == [7, 8]
    with pytest.raises(AssertionError, match=r"states 2·10⁻³, but the measured value is 0.00300"):
        states(text, "AdamW (lr {} after", 3e-3)

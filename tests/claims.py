"""Numbers that the course's texts state about its models, checked against measurements.

A figure such as "the fifth shrunk to a norm of 0.35" lives in the text only. A test measures the
value and asks the text to state it::

    states(text, "the fifth shrunk to a norm of {}", norms[0])

The template is the phrase with ``{}`` where each number stands. White space in the template
matches any white space (the text wraps its lines), everything else matches literally. A stated
number may be written with a Unicode minus ("−0.26"), with thousands separators ("3,000"), as a
percentage ("77 %": a ``{}`` followed by "%" in the template reads as the fraction 0.77), as a
power of ten ("10⁻³", "2·10⁻³"), or as a word from "zero" to "twenty" ("Seven of the eight
instances").

Each stated number must equal its measured value to the precision it is written with: half a unit
of its last digit ("0.35" allows ±0.005, "77 %" ±0.005, "850" ±0.5). A test that needs another
tolerance passes it with the reason, which the failure message repeats.

Numbers that a text uses as a bound ("below 0.1", "more than six times") are read with
``stated`` (or taken from what ``states`` returns) and then used in the test's own comparison,
so that they too exist only in the text.
"""

import math
import re
from dataclasses import dataclass

WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen twenty").split()
_WORD_VALUES = {word: value for value, word in enumerate(WORDS)}
_DIGITS = r"[−-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_SUPERSCRIPTS = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
_POWER = r"(?:\d+(?:\.\d+)?·)?10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+"  # 10⁻³, 2·10⁻³
_WORD = r"\b(?:" + "|".join(sorted(WORDS, key=len, reverse=True)) + r")\b"
NUMBER = rf"(?<!\d)(?:{_POWER}|{_DIGITS}|(?i:{_WORD}))(?![\d⁰¹²³⁴⁵⁶⁷⁸⁹])"
_PERCENT = re.compile(r"\s*%")


@dataclass(frozen=True)
class Number:
    """A number as a text states it: what is written, its value and the precision written."""
    written: str
    value: float  # a percentage as a fraction
    precision: float  # half a unit of the last written digit
    percent: bool = False

    @classmethod
    def parse(cls, written, percent=False):
        if written.lower() in _WORD_VALUES:
            value, precision = _WORD_VALUES[written.lower()], 0.5
        elif written[-1] in "⁰¹²³⁴⁵⁶⁷⁸⁹":
            mantissa, _, power = written.rpartition("10")
            scale = 10.0 ** int(power.translate(_SUPERSCRIPTS))
            mantissa = Number.parse(mantissa.rstrip("·") or "1")
            value, precision = mantissa.value * scale, mantissa.precision * scale
        else:
            plain = written.replace("−", "-").replace(",", "")
            decimals = len(plain.split(".")[1]) if "." in plain else 0
            value, precision = float(plain), 0.5 * 10.0 ** -decimals
        if percent:
            value, precision = value / 100, precision / 100
        return cls(written, value, precision, percent)


def _pattern(template):
    pieces = template.split("{}")
    literal = [r"\s+".join(re.escape(word) for word in re.split(r"\s+", piece))
               for piece in pieces]
    return re.compile(f"({NUMBER})".join(literal)), [
        bool(_PERCENT.match(piece)) for piece in pieces[1:]]


def _readings(text, template):
    """Every place the text states the phrase: (the phrase as written, its numbers)."""
    pattern, percent = _pattern(template)
    return [(" ".join(match[0].split()),
             [Number.parse(written, p) for written, p in zip(match.groups(), percent)])
            for match in pattern.finditer(text)]


def _missing(text, template):
    """A failure message for a phrase the text does not have, with where it might have gone: the
    longest run of the template's words that the text has."""
    flat = " ".join(text.split())
    runs = [words[i:j] for words in (piece.split() for piece in template.split("{}"))
            for i in range(len(words)) for j in range(i + 2, len(words) + 1)]
    hint = ""
    for run in sorted(runs, key=len, reverse=True):
        index = flat.find(" ".join(run))
        if index >= 0:
            hint = f"\nthe nearest the text comes: \"…{flat[max(0, index - 80):index + 160]}…\""
            break
    return f"the text does not state \"{template}\" ({{}}: any number){hint}"


def stated(text, template):
    """The numbers the text states in the phrase ``template`` (percentages as fractions).

    The phrase must occur, and wherever it occurs it must state the same numbers."""
    readings = _readings(text, template)
    if not readings:
        raise AssertionError(_missing(text, template))
    values = {tuple(n.value for n in numbers) for _, numbers in readings}
    if len(values) > 1:
        raise AssertionError(f"the text states \"{template}\" with different numbers: "
                             + "; ".join(f"\"{phrase}\"" for phrase, _ in readings))
    return [n.value for n in readings[0][1]]


def states(text, template, *measured, tolerance=None, reason=None):
    """Assert that the text states the measured values in the phrase ``template``.

    ``measured`` has one entry per ``{}``: a number, a sequence of numbers that the one stated
    number must each match (as in "0.00 at both stages"), or None for a number this call does not
    check (a bound the test uses itself). ``tolerance``, a number or one per ``{}`` (None: the
    stated precision), in the measured value's units (a fraction for a percentage), replaces the
    stated precision and needs a ``reason``. Returns the stated
    values, as ``stated`` does."""
    if tolerance is not None and not reason:
        raise ValueError("a tolerance other than the stated precision needs a reason")
    if len(measured) != template.count("{}"):
        raise ValueError(f"{template.count('{}')} numbers in \"{template}\", "
                         f"{len(measured)} measured")
    readings = _readings(text, template)
    if not readings:
        raise AssertionError(_missing(text, template))
    tolerances = (tolerance if isinstance(tolerance, (list, tuple))
                  else [tolerance] * len(measured))
    for phrase, numbers in readings:
        for number, values, tol in zip(numbers, measured, tolerances):
            if values is None:
                continue
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            allowed = number.precision if tol is None else tol
            worst = max(values, key=lambda v: abs(v - number.value))
            if not abs(worst - number.value) <= allowed * (1 + 1e-6) + 1e-12:
                shown = f"±{100 * allowed:g} %" if number.percent else f"±{allowed:g}"
                why = (f"{shown}: {reason}" if tol is not None
                       else f"{shown}, the precision it is written with")
                raise AssertionError(
                    f"\"{phrase}\" states {number.written}, but the measured value is "
                    f"{_show(worst, number)} (allowed {why}). Update the sentence to what the "
                    "model does now, or find out why the model changed.")
    return stated(text, template)


def _show(value, number):
    """A measured value, written like the stated number with two more digits."""
    if number.percent:
        value, precision = 100 * value, 100 * number.precision
    else:
        precision = number.precision
    decimals = max(0, round(-math.log10(2 * precision))) + 2
    return f"{value:.{decimals}f}" + (" %" if number.percent else "")

"""Chapter 01, toy models of superposition: ``solutions`` (every exercise's code), ``checks``
(its grading checks) and ``plots`` (its figures)."""

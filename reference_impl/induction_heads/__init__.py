"""Chapter 03, induction heads: ``solutions`` (every exercise's code), ``checks`` (its grading
checks) and ``plots`` (its figures)."""

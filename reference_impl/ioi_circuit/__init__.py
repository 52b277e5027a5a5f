"""Chapter 04, the IOI circuit: ``solutions`` (every exercise's code), ``checks`` (its grading
checks), ``plots`` (its figures) and ``data`` (its prompts)."""

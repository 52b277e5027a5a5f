"""Chapter 05, sparse autoencoders: ``solutions`` (every exercise's code and the SAE itself),
``checks`` (its grading checks), ``plots`` (its figures) and ``data`` (its activations and
concepts)."""

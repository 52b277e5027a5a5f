"""Chapter 06: locating and editing facts (causal tracing and ROME on facts-6l)."""

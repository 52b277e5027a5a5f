"""Chapter 02: probing."""

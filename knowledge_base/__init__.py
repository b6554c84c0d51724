"""Curated knowledge base: reviewed YAML content plus the matcher that finds the right entry."""

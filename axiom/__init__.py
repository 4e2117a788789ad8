"""Axiom Workbench: build and evaluate retrieval-augmented generation, offline first."""

__version__ = "0.1.0"

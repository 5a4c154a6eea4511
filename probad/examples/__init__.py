"""Runnable examples: ``python -m probad.examples`` lists them, and
``python -m probad.examples NAME`` runs one."""

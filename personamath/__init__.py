"""personamath: persona-diversified, verified chain-of-thought data for math reasoning.

The core library. Nothing in this package imports Prefect, so every piece can be
tested and reused without an orchestrator; `tasks/` and `flows/` wrap it.
"""

__version__ = "0.1.0"

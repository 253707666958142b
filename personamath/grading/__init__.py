"""personamath.grading: decide whether a model's answer equals the gold answer.

Pure library (no Prefect). Two verbs: ``extract_answer`` finds the final answer in a
response, ``verify`` compares it with the gold answer and returns a ``Verdict``.
"""

from personamath.grading.extract import extract_answer
from personamath.grading.verdict import Verdict
from personamath.grading.verify import verify

GRADER_VERSION = "grader-2"

__all__ = ["GRADER_VERSION", "Verdict", "extract_answer", "verify"]

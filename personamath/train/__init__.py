"""Fine-tuning (TRL) and evaluation (GSM8K / MATH) of models trained on PersonaMathQA.

Pure logic, no Prefect (tasks/train.py and flows/ wrap it). Torch, transformers, TRL,
llama.cpp and vLLM are imported inside the functions that use them, so importing
`personamath` or `personamath.train` stays light; they come with the `train`, `local`
and `gpu` extras.
"""

from personamath.train.settings import EvalSettings, FinetuneSettings
from personamath.train.template import TEMPLATE_VERSION, build_example, format_prompt

__all__ = ["TEMPLATE_VERSION", "EvalSettings", "FinetuneSettings", "build_example",
           "format_prompt"]

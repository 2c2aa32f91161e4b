#!/usr/bin/env python3
"""bf16 against fp32 on the demo tasks (issue 12's numerics criterion): per task (quick mode's data), a search
(qkvo+mlp, budget 0.4) and a fresh fine-tune of the searched ranks, once with the base in float32 and once in
bfloat16; prints whether the ranks agree and the eval perplexities.

    python bench/bf16_demo_tasks.py          # about 1.5 minutes on 2 cores
"""
import sys
import tempfile
import time
from pathlib import Path

import loranas
from loranas import tasks
from loranas.demo.settings import ADAPTER_SETS, BUDGET, MODES, SPACE

BASE = Path(loranas.__file__).parent / "demo" / "base"
TARGETS = ADAPTER_SETS["qkvo+mlp"]


def run(files: dict, dtype: str, s) -> dict:
    t = time.time()
    with loranas.load_model(BASE, dtype=dtype) as m:
        d = {k: loranas.Dataset.from_cauldron(p, model=m) for k, p in files.items()}
        r = loranas.search(m, d["train"], d["val"], targets=TARGETS, space=SPACE, budget=BUDGET,
                           epochs=s.search_epochs, batch_size=s.batch_size, lr=s.lr, alpha_lr=s.alpha_lr, seed=0,
                           lora_alpha=s.lora_alpha)
        loranas.finetune(m, d["train"], d["val"], ranks=r, init="fresh", targets=TARGETS, epochs=s.finetune_epochs,
                         batch_size=s.batch_size, lr=s.lr, seed=0, lora_alpha=s.lora_alpha)
        return {"ranks": r.ranks, "ppl": loranas.evaluate(m, d["eval"]).perplexity, "s": time.time() - t}


def main() -> int:
    s = MODES["quick"]
    loranas.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        files = tasks.make(tmp, n_train=s.n_train, n_val=s.n_val, n_eval=s.n_eval, seed=0)
        for name in files:
            a, b = run(files[name], "float32", s), run(files[name], "bfloat16", s)
            agree = sum(a["ranks"][k] == b["ranks"][k] for k in a["ranks"])
            diff = abs(b["ppl"] - a["ppl"]) / a["ppl"]
            print(f"{name}: ranks agree on {agree}/{len(a['ranks'])} modules; eval perplexity fp32 {a['ppl']:.4f}, "
                  f"bf16 {b['ppl']:.4f} ({100 * diff:.2f}%)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

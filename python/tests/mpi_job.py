"""One job for test_mpi.py: a search or a fine-tune on test_training's synthetic samples for the tiles4_gqa
fixture, run plainly (one process) or as ``mpirun -np N python mpi_job.py SPEC``. SPEC is JSON: job ("search",
"finetune" or "generate"), model, out (rank 0 writes the result there), and optional checkpoint_dir, max_steps, epochs,
threads; pause_at and pid_file (rank 1 writes its pid there after that step and sleeps, to be killed); fail_rank
(that rank feeds other data); raise_rank (that rank's script raises before the job); adapter (rank 0's PEFT
export)."""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import loranas  # noqa: E402
from test_training import make_samples  # noqa: E402

spec = json.loads(sys.argv[1])
loranas.set_num_threads(spec.get("threads", 1))
world = loranas.world()
model = loranas.load_model(spec["model"])
train = make_samples(24, seed=3 if world.rank == spec.get("fail_rank") else 1)
val = make_samples(8, seed=2)
if world.rank == spec.get("raise_rank"):
    raise RuntimeError(f"a bug in rank {world.rank}'s script")


def progress(event):
    if event["kind"] == "step":
        print(f"rank {world.rank} pid {os.getpid()} step {event['step']}", flush=True)
        if world.rank == 1 and event["step"] == spec.get("pause_at"):
            with open(spec["pid_file"], "w") as f:
                f.write(str(os.getpid()))
            time.sleep(300)


common = dict(epochs=spec.get("epochs", 2), batch_size=4, lr=3e-3, seed=7, checkpoint_dir=spec.get("checkpoint_dir"),
              checkpoint_every=1, max_steps=spec.get("max_steps"), progress=progress)
if spec["job"] == "generate":
    # Five prompts (their first 8 tokens) with their images, greedy: split 3 + 2 over two ranks.
    prompts = make_samples(5, seed=4)
    cut = ("input_ids", "attention_mask", "cross_attention_mask")
    whole = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")
    batch = {k: np.stack([s[k][:8] for s in prompts]) for k in cut}
    batch.update({k: np.stack([s[k] for s in prompts]) for k in whole})
    out = {"ids": model.generate(**batch, max_new_tokens=6, stop_token_ids=[]).tolist()}
elif spec["job"] == "search":
    r = loranas.search(model, train, val, space=(2, 4, 8), alpha_lr=5e-2, **common)
    out = {"ranks": r.ranks, "alpha": {k: v.tolist() for k, v in r.alpha_history.items()},
           "losses": r.train_losses, "val_losses": r.validation_losses, "steps": r.steps}
else:
    r = loranas.finetune(model, train, val, ranks=4, **common)
    out = {"losses": r.train_losses, "perplexity": r.eval_perplexity,
           "initial": r.initial_evaluation["perplexity"], "steps": r.steps}
    if spec.get("adapter"):
        r.save_peft(spec["adapter"])
out["world"] = [world.rank, world.size]
if world.is_main:
    with open(spec["out"], "w") as f:
        json.dump(out, f)

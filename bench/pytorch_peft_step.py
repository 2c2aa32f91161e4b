#!/usr/bin/env python3
"""PyTorch + PEFT side of the loranas Mllama benchmark: time one LoRA training step on CPU.

Builds MllamaForConditionalGeneration from bench/configs/<size>/config.json (random init, float32,
seed 0), wraps it with PEFT LoRA (r 64, alpha 128, dropout 0 on q,k,v,o,gate,up,down,fc1,fc2; base
frozen), and times a training step = zero_grad + forward with labels + backward + AdamW step
(lr 1e-4, LoRA parameters only) on batch 4 x 128 text tokens with one 4-tile image (2x2) per sample.

Reports the median step time over --steps after --warmup, a no-grad forward (same inputs, with
labels, median over --steps after --warmup), peak RSS of this process (getrusage ru_maxrss), FLOPs
of one extra step (forward + backward) from torch.utils.flop_counter.FlopCounterMode, and parameter
counts. Run one size per process: peak RSS is per process.

  .venv-test/bin/python bench/pytorch_peft_step.py --size tiny --threads 2 --json
"""
import argparse
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)  # transformers deprecation notes

T0 = time.perf_counter()
import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import MllamaConfig, MllamaForConditionalGeneration  # noqa: E402
IMPORT_S = time.perf_counter() - T0

HERE = Path(__file__).resolve().parent
SIZES = ("tiny", "small", "medium")
BATCH, SEQ, TILES, ASPECT_RATIO_ID_2x2 = 4, 128, 4, 6
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"]


def max_rss_mib():
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_pressure_us():
    """Total µs some task waited for a CPU (Linux PSI), or None where /proc/pressure is missing."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().split("total=")[1])
    except (OSError, IndexError, ValueError):
        return None


def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def make_inputs(cfg, seed=0):
    """Batch 4: image token then 127 random ids; one image of 4 tiles (2x2) that every token sees."""
    g = torch.Generator().manual_seed(seed)
    V, v = cfg.text_config.vocab_size, cfg.vision_config
    # Inputs carry id V (the first of the embedding table's 8 extra rows) at the image position,
    # like the released checkpoints; config.image_token_index is never read by forward().
    input_ids = torch.randint(0, V, (BATCH, SEQ), generator=g)
    input_ids[:, 0] = V
    labels = input_ids.clone()
    labels[:, 0] = -100  # V is outside the V logits; a label there would raise IndexError
    H = W = v.image_size
    return dict(
        input_ids=input_ids,
        labels=labels,
        pixel_values=torch.randn(BATCH, 1, TILES, v.num_channels, H, W, generator=g),
        aspect_ratio_ids=torch.full((BATCH, 1), ASPECT_RATIO_ID_2x2, dtype=torch.long),
        aspect_ratio_mask=torch.ones(BATCH, 1, TILES, dtype=torch.long),
        cross_attention_mask=torch.ones(BATCH, SEQ, 1, TILES, dtype=torch.long),
        use_cache=False,
    )


def build(size, seed=0):
    cfg = MllamaConfig.from_json_file(str(HERE / "configs" / size / "config.json"))
    torch.manual_seed(seed)
    base = MllamaForConditionalGeneration(cfg).to(torch.float32)
    lora = LoraConfig(r=64, lora_alpha=128, lora_dropout=0.0, target_modules=TARGETS, bias="none")
    model = get_peft_model(base, lora)
    model.train()
    return cfg, model


def count_params(model):
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable == lora, (trainable, lora)  # the base is frozen, only LoRA A/B train
    n_modules = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    return total - lora, lora, n_modules


def without_sdpa(counter):
    """FLOPs counted outside scaled_dot_product attention ops (fused attention, fwd and bwd)."""
    return sum(v for op, v in counter.get_flop_counts()["Global"].items() if "scaled_dot_product" not in str(op))


AUTOCAST = False  # --autocast: the forward under torch.autocast("cpu", dtype=torch.bfloat16)


def train_step(model, opt, inputs):
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST):
        loss = model(**inputs).loss
    loss.backward()
    opt.step()
    return loss


def timed(fn, warmup, steps):
    """Wall ms of warm-up and timed calls, plus the share of the timed wall time during which some
    task on the machine waited for a CPU (PSI "some"; our own 2 threads on 2 idle cores give ~0,
    other work on the machine shows up here and usually explains slow, scattered times)."""
    times = []
    p0 = w0 = None
    for i in range(warmup + steps):
        if i == warmup:
            p0, w0 = cpu_pressure_us(), time.perf_counter()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    p1, w1 = cpu_pressure_us(), time.perf_counter()
    pressure = None if p0 is None or p1 is None else round(100.0 * (p1 - p0) / 1e6 / (w1 - w0), 1)
    return times[:warmup], times[warmup:], pressure


def run(size, threads, steps, warmup):
    torch.set_num_threads(threads)
    rss_import = max_rss_mib()
    cfg, model = build(size)
    params, lora_params, n_lora_modules = count_params(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = make_inputs(cfg)
    rss_build = max_rss_mib()

    losses = []
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    warm_ms, step_ms, step_pressure = timed(lambda: losses.append(float(train_step(model, opt, inputs).detach())), warmup, steps)
    cpu_per_step = (time.process_time() - cpu0) / (warmup + steps) * 1e3

    # FLOPs of one extra step (zero_grad + forward + backward; the optimizer has no counted ops).
    from torch.utils.flop_counter import FlopCounterMode
    opt.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fc_step:
        model(**inputs).loss.backward()
    with torch.no_grad(), FlopCounterMode(display=False) as fc_fwd:
        model(**inputs)
    opt.zero_grad(set_to_none=True)

    def forward():
        with torch.no_grad():
            model(**inputs)

    fwd_warm_ms, fwd_ms, fwd_pressure = timed(forward, warmup, steps)

    return {
        "size": size,
        "autocast_bf16": AUTOCAST,
        "threads": threads,
        "step_ms_median": round(statistics.median(step_ms), 2),
        "step_ms_all": [round(t, 2) for t in step_ms],
        "forward_ms_median": round(statistics.median(fwd_ms), 2),
        "peak_rss_mib": round(max_rss_mib(), 1),
        "gflop_per_step": round(fc_step.get_total_flops() / 1e9, 3),
        "params": params,
        "lora_params": lora_params,
        "torch_version": torch.__version__,
        "peft_version": peft.__version__,
        # Context beyond the fields the driver compares.
        "extra": {
            "warmup_step_ms": [round(t, 2) for t in warm_ms],
            "step_ms_min": round(min(step_ms), 2),
            "forward_ms_all": [round(t, 2) for t in fwd_ms],
            "cpu_ms_per_step": round(cpu_per_step, 1),
            "cpu_pressure_pct_steps": step_pressure,
            "cpu_pressure_pct_forward": fwd_pressure,
            "loadavg_1m_before": round(load_before, 2),
            "gflop_forward": round(fc_fwd.get_total_flops() / 1e9, 3),
            # torch 2.13's counter gave no FLOPs for CPU flash attention; this matches its totals.
            "gflop_per_step_without_sdpa": round(without_sdpa(fc_step) / 1e9, 3),
            "gflop_per_s": round(fc_step.get_total_flops() / 1e9 / (statistics.median(step_ms) / 1e3), 1),
            "peak_rss_after_import_mib": round(rss_import, 1),
            "peak_rss_after_build_mib": round(rss_build, 1),
            "rss_at_end_mib": round(current_rss_mib(), 1),
            "import_s": round(IMPORT_S, 2),
            "lora_modules": n_lora_modules,
            "losses": [round(x, 4) for x in losses],
            "batch": BATCH, "seq": SEQ, "tiles": TILES, "image_size": cfg.vision_config.image_size,
            "attn_implementation": model.base_model.model.config._attn_implementation,
            "transformers_version": transformers.__version__,
            "torch_cuda_build": torch.version.cuda,
            "mkldnn": torch.backends.mkldnn.is_available(),
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, required=True)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps after warm-up (default 6)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a line")
    ap.add_argument("--autocast", action="store_true", help="bf16 autocast around the forward (what CPU users run)")
    args = ap.parse_args()
    global AUTOCAST
    AUTOCAST = args.autocast
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --threads >= 1")

    r = run(args.size, args.threads, args.steps, args.warmup)
    if args.json:
        import json
        print(json.dumps(r))
    else:
        print(f"pytorch+peft {r['size']}: {r['threads']} threads, step {r['step_ms_median']:.1f} ms "
              f"(median of {args.steps}), forward {r['forward_ms_median']:.1f} ms, "
              f"{r['gflop_per_step']:.1f} GFLOP/step ({r['extra']['gflop_per_s']:.0f} GFLOP/s), "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB (after import {r['extra']['peak_rss_after_import_mib']:.0f}), "
              f"params {r['params'] / 1e6:.2f}M, LoRA {r['lora_params'] / 1e6:.2f}M "
              f"[torch {r['torch_version']}, peft {r['peft_version']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

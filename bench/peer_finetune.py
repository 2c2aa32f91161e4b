"""PyTorch + PEFT's fine-tune of the demo base on a demo task's data, as CPU users run it: the LoRA an engine run
exported (its PEFT config: target modules, rank_pattern, lora_alpha), built fresh on the transformers model,
AdamW at a constant learning rate over the same batch size and epochs, the loss being transformers' own; in fp32,
or with the forward under torch.autocast bf16. Used by bf16_demo_tasks.py --peer to measure how far the peer's
bf16 lands from its fp32 on the same short runs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
import transformers
from peft import LoraConfig, get_peft_model

import loranas

BASE = Path(loranas.__file__).parent / "demo" / "base"
WEIGHT_DECAY = 0.01  # the engine's fine-tune default (FinetuneOptions.weightDecay)


def compare_peer(files: dict, peft_dir: str, lora_parameters: int, s) -> str:
    """The peer's eval perplexity in fp32, in fp32 at lr·(1 + 1e-4), and under bf16 autocast, with the relative
    differences from its fp32."""
    data = samples(files)
    fp32 = finetune(data, peft_dir, lora_parameters, s, autocast=False)
    nudged = finetune(data, peft_dir, lora_parameters, dataclasses.replace(s, lr=s.lr * (1 + 1e-4)), autocast=False)
    bf16 = finetune(data, peft_dir, lora_parameters, s, autocast=True)
    return (f"eval perplexity fp32 → bf16 autocast {fp32:.4f} → {bf16:.4f} ({100 * abs(bf16 - fp32) / fp32:.2f}%), "
            f"fp32 at lr·(1 + 1e-4) {nudged:.4f} ({100 * abs(nudged - fp32) / fp32:.2f}%)")


def samples(files: dict) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each split's samples as the engine's processor makes them (the processor is checked against
    transformers' in the test suite)."""
    with loranas.load_model(BASE) as m:
        splits = {k: loranas.Dataset.from_cauldron(p, model=m) for k, p in files.items()}
        return {k: [d[i] for i in range(len(d))] for k, d in splits.items()}


def finetune(data: dict, peft_dir: str, lora_parameters: int, s, autocast: bool, seed: int = 0) -> float:
    """One fine-tune from fresh adapters; returns the eval split's token-weighted perplexity."""
    torch.manual_seed(seed)
    model = transformers.MllamaForConditionalGeneration.from_pretrained(BASE, dtype=torch.float32)
    config = json.loads((Path(peft_dir) / "adapter_config.json").read_text())
    known = {f.name for f in dataclasses.fields(LoraConfig)}
    config = {k: v for k, v in config.items() if k in known} | {"inference_mode": False}
    model = get_peft_model(model, LoraConfig(**config))
    trained = [p for p in model.parameters() if p.requires_grad]
    if sum(p.numel() for p in trained) != lora_parameters:
        raise RuntimeError(f"PEFT built {sum(p.numel() for p in trained)} LoRA parameters from {peft_dir}, "
                           f"the engine trained {lora_parameters}")
    opt = torch.optim.AdamW(trained, lr=s.lr, weight_decay=WEIGHT_DECAY, eps=1e-8)
    rng = np.random.default_rng(seed)
    train = data["train"]
    for _ in range(s.finetune_epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order) - s.batch_size + 1, s.batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**collate([train[j] for j in order[i:i + s.batch_size]])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return perplexity(model, data["eval"], s.batch_size, autocast)


def perplexity(model, rows: list, batch_size: int, autocast: bool) -> float:
    """exp of the mean next-token loss over every labelled token of rows."""
    total, tokens = 0.0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for i in range(0, len(rows), batch_size):
            batch = collate(rows[i:i + batch_size])
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    return math.exp(total / tokens)


def collate(rows: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Right-pads the token axes (pad id 0 under a zero attention mask, label -100, no image attended)."""
    length = max(len(r["input_ids"]) for r in rows)

    def pad(key, value):
        out = np.full((len(rows), length) + rows[0][key].shape[1:], value, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r[key])] = r[key]
        return torch.from_numpy(out)

    attention = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        attention[i, :len(r["input_ids"])] = 1
    return {"input_ids": pad("input_ids", 0), "labels": pad("labels", -100),
            "attention_mask": torch.from_numpy(attention),
            "cross_attention_mask": pad("cross_attention_mask", 0),
            "pixel_values": torch.from_numpy(np.stack([r["pixel_values"] for r in rows])),
            "aspect_ratio_ids": torch.from_numpy(np.stack([r["aspect_ratio_ids"] for r in rows])),
            "aspect_ratio_mask": torch.from_numpy(np.stack([r["aspect_ratio_mask"] for r in rows]))}

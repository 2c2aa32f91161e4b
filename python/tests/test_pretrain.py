"""Full-parameter training from Python (loranas.init_model, loranas.pretrain, save_merged as bfloat16), checked
against PyTorch: two steps of the engine's AdamW with clipping equal torch.optim.AdamW + clip_grad_norm_ on
transformers' model from the same initial weights; bf16 files hold torch's rounding of the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import loranas
from test_training import TILES4, make_samples

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

SAMPLES = [dict(s, input_ids=s["input_ids"][:8], labels=s["labels"][:8], attention_mask=s["attention_mask"][:8],
                cross_attention_mask=s["cross_attention_mask"][:8]) for s in make_samples(4, seed=9)]
LR, DECAY, CLIP = 1e-2, 0.1, 0.5


def torch_steps(init_dir, out_dir, steps: int) -> dict:
    """transformers' model from init_dir after `steps` AdamW steps on all four samples at once, as saved by
    save_pretrained (the checkpoint's tensor names)."""
    model = transformers.MllamaForConditionalGeneration.from_pretrained(str(init_dir), dtype=torch.float32).train()
    params = [p for p in model.parameters()]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": DECAY},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    batch = {k: torch.from_numpy(np.stack([s[k] for s in SAMPLES])) for k in SAMPLES[0]}
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        opt.zero_grad()
    model.save_pretrained(str(out_dir))
    return load_file(str(out_dir / "model.safetensors"))


def test_two_steps_equal_torch_adamw_with_clipping(tmp_path):
    with loranas.init_model(TILES4, seed=3) as model:
        model.save_merged(tmp_path / "init")
        result = loranas.pretrain(model, SAMPLES, SAMPLES, epochs=2, batch_size=4, lr=LR, warmup_steps=0,
                                  min_lr_ratio=1.0, weight_decay=DECAY, max_grad_norm=CLIP)
        model.save_merged(tmp_path / "after")
    assert result.steps == 2 and result.eval_perplexity[-1] < result.initial_evaluation["perplexity"]
    init = load_file(str(tmp_path / "init" / "model.safetensors"))
    ours = load_file(str(tmp_path / "after" / "model.safetensors"))
    ref = torch_steps(tmp_path / "init", tmp_path / "torch", 2)
    assert set(ref) == set(ours)
    worst = 0.0
    for name, before in init.items():
        moved_ref, moved_ours = ref[name] - before, ours[name] - before
        err = float((moved_ours - moved_ref).norm() / max(float(moved_ref.norm()), 1e-12))
        worst = max(worst, err)
        assert err < 1e-3, f"{name}: the update differs from torch's by {err:.2e} (relative)"
    print(f"worst relative difference of an update: {worst:.2e}")


def test_bfloat16_files_hold_torchs_rounding(tmp_path):
    with loranas.init_model(TILES4, seed=5) as model:
        model.save_merged(tmp_path / "f32")
        model.save_merged(tmp_path / "bf16", dtype="bfloat16")
        with pytest.raises(loranas.InvalidArgumentError):
            model.save_merged(tmp_path / "x", dtype="float16")
    f32 = load_file(str(tmp_path / "f32" / "model.safetensors"))
    bf16 = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    for name, w in f32.items():
        assert bf16[name].dtype == torch.bfloat16
        assert torch.equal(bf16[name], w.to(torch.bfloat16)), name


def test_init_model_is_fixed_by_its_seed():
    with loranas.init_model(TILES4, seed=1) as a, loranas.init_model(TILES4, seed=1) as b:
        x = a.forward(**{k: v[None] for k, v in SAMPLES[0].items()}).logits
        y = b.forward(**{k: v[None] for k, v in SAMPLES[0].items()}).logits
    assert np.array_equal(x, y), "the seed fixes the weights"
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.init_model(TILES4, seed=-1)

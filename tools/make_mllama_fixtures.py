#!/usr/bin/env python3
"""Reference fixtures for the Swift Mllama (LLaMA-3.2-Vision) engine and its PEFT LoRA.

Run:  .venv-test/bin/python tools/make_mllama_fixtures.py [--out DIR]   (the venv tools/test.sh makes)

Writes Tests/LoRANASTests/Fixtures/mllama/{tiles4_gqa, tiles4_gqa_sharded, tile1_bf16}
(tiles4_gqa/peft holds the LoRA case). Everything is built from configs (no download),
with fixed seeds and one torch thread, so the output is bit-identical between runs on
the same software stack. The whole folder is built in a temporary sibling directory and
swapped in with renames at the end; a top-level README.md in the old folder is carried over.

Reference numbers are computed in float64 (model.double()) from weights already rounded
to the storage dtype; the loss is the HF causal-LM loss (shift by one, mean over
non-ignored targets of the whole batch, ignore_index -100), evaluated in float64 instead
of HF's float32 (HF's own value is checked against it). Everything is stored as float32.

Tested with torch 2.15 (cpu), transformers 5.24.0, peft 0.21.2.
"""

import argparse
import copy
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import save_file

import transformers
import peft
from transformers import MllamaConfig, MllamaForConditionalGeneration
from transformers.models.mllama.processing_mllama import (
    convert_sparse_cross_attention_mask_to_dense,
    get_cross_attention_token_mask,
)
from peft import LoraConfig, PeftModel, get_peft_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"

DEFAULT_ASPECTS = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"]


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------- names


def ckpt_name(n):
    """In-memory parameter name -> checkpoint (safetensors) name."""
    if n.startswith("model.vision_model.") or n.startswith("model.multi_modal_projector."):
        return n[len("model."):]
    if n.startswith("model.language_model."):
        return "language_model.model." + n[len("model.language_model."):]
    if n == "lm_head.weight":
        return "language_model.lm_head.weight"
    raise KeyError(n)


# --------------------------------------------------------------------------- weights

GATE_SUFFIXES = (
    "gated_positional_embedding.gate",
    "pre_tile_positional_embedding.gate",
    "post_tile_positional_embedding.gate",
    ".gate_attn",
    ".gate_ffn",
    ".cross_attn_attn_gate",
    ".cross_attn_mlp_gate",
)
TABLE_NAMES = (
    "gated_positional_embedding.embedding",
    "gated_positional_embedding.tile_embedding.weight",
    "pre_tile_positional_embedding.embedding.weight",
    "post_tile_positional_embedding.embedding.weight",
)
NORM_RE = re.compile(r"(layernorm_pre|layernorm_post|input_layernorm|post_attention_layernorm|q_norm|k_norm|\.norm)\.weight$")
MATRIX_RE = re.compile(r"(_proj|fc1|fc2|multi_modal_projector|lm_head|patch_embedding)\.weight$")


@torch.no_grad()
def randomize(model, gen):
    """Re-randomize every parameter (float32 draws, in named_parameters order)."""
    kinds = {}
    for n, p in model.named_parameters():
        shape = p.shape
        if n.endswith(GATE_SUFFIXES):
            mag = torch.rand(shape, generator=gen) * 0.9 + 0.3
            sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)
            v, k = sign * mag, "gate"
        elif n.endswith("embed_tokens.weight") or n.endswith("class_embedding"):
            v, k = torch.randn(shape, generator=gen) * 0.5, "embedding"
        elif n.endswith(TABLE_NAMES):
            v, k = torch.randn(shape, generator=gen) * 0.3, "table"
        elif NORM_RE.search(n):
            v, k = 1.0 + (torch.rand(shape, generator=gen) * 0.6 - 0.3), "norm"
        elif n.endswith(".bias"):
            v, k = torch.rand(shape, generator=gen) * 0.6 - 0.3, "bias"
        elif MATRIX_RE.search(n) and p.dim() >= 2:
            fan_in = int(np.prod(shape[1:]))
            v, k = torch.randn(shape, generator=gen) / math.sqrt(fan_in), "matrix"
        else:
            raise RuntimeError(f"unclassified parameter {n} {tuple(shape)}")
        p.copy_(v.to(p.dtype))
        kinds[n] = k
    return kinds


def round_params_(model, dtype):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(p.dtype))


# --------------------------------------------------------------------------- inputs


def build_cam(input_ids, image_token, num_tiles, T):
    """Cross-attention mask exactly as MllamaProcessor builds it (on the padded ids)."""
    sparse = [get_cross_attention_token_mask(list(map(int, row)), image_token) for row in input_ids]
    return convert_sparse_cross_attention_mask_to_dense(sparse, num_tiles, T, input_ids.shape[1])


def make_inputs(spec, gen):
    """spec: dict with S, T, image_size, I, image_token, pad, vocab, samples=[{ids, mask, images}]
    ids: list of token ids where 'IMG' means the image token and 'PAD' the pad token;
    images: list of (aspect_id, n_tiles); padded slots are appended automatically."""
    B, S, I, T, HW = len(spec["samples"]), spec["S"], spec["I"], spec["T"], spec["image_size"]
    V, IMG, PAD = spec["vocab"], spec["image_token"], spec["pad"]
    input_ids = np.zeros((B, S), np.int64)
    attn = np.zeros((B, S), np.int64)
    ar_ids = np.zeros((B, I), np.int64)
    ar_mask = np.zeros((B, I, T), np.int64)
    pixels = torch.zeros((B, I, T, 3, HW, HW), dtype=torch.float32)
    num_tiles = []
    ordinary = [t for t in range(V) if t != PAD]
    for b, smp in enumerate(spec["samples"]):
        ids = smp["ids"]
        assert len(ids) == S
        for s, t in enumerate(ids):
            if t == "IMG":
                input_ids[b, s] = IMG
            elif t == "PAD":
                input_ids[b, s] = PAD
            elif t == "T":
                input_ids[b, s] = ordinary[int(torch.randint(len(ordinary), (1,), generator=gen))]
            else:
                input_ids[b, s] = int(t)
        attn[b] = np.array(smp["mask"], np.int64)
        nt = []
        for i in range(I):
            if i < len(smp["images"]):
                aid, n = smp["images"][i]
                ar_ids[b, i] = aid
                ar_mask[b, i, :n] = 1
                pixels[b, i, :n] = torch.randn((n, 3, HW, HW), generator=gen)
                nt.append(n)
            else:  # padded image slot, as the processor makes it
                ar_ids[b, i] = 0
                ar_mask[b, i, 0] = 1
        num_tiles.append(nt)
        assert sum(1 for t in ids if t == "IMG") == len(smp["images"])
    if spec.get("round_pixels_bf16"):
        pixels = pixels.to(torch.bfloat16).to(torch.float32)
    cam = build_cam(input_ids, IMG, num_tiles, T)
    labels = input_ids.copy()
    labels[(attn == 0) | (input_ids == IMG)] = -100
    return {
        "input_ids": input_ids,
        "attention_mask": attn,
        "pixel_values": pixels.numpy(),
        "aspect_ratio_ids": ar_ids,
        "aspect_ratio_mask": ar_mask,
        "cross_attention_mask": cam,
        "labels": labels,
    }


# --------------------------------------------------------------------------- reference


def causal_lm_loss64(logits, labels):
    """HF ForCausalLMLoss semantics (shift, ignore -100, mean over the batch), float64."""
    V = logits.shape[-1]
    tgt = F.pad(labels, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.reshape(-1, V).double(), tgt.reshape(-1), ignore_index=-100, reduction="mean")


def to_torch(inputs, dtype):
    out = {}
    for k, v in inputs.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if t.is_floating_point():
            t = t.to(dtype)
        out[k] = t
    return out


def f32(t):
    return np.ascontiguousarray(t.detach().to(torch.float64).cpu().numpy().astype(np.float32))


def run_reference(model, inputs, multimodal=True):
    """model: float64, eval. Returns (logits, loss64, hf_loss, grads{in-memory name}, acts, act_grads)."""
    acts, counts = {}, {"embed": 0}

    def emb_hook(mod, args, out):
        counts["embed"] += 1
        out.retain_grad()
        acts["inputs_embeds"] = out

    def vis_hook(mod, args, out):
        t = out.last_hidden_state
        t.retain_grad()
        acts["vision_output"] = t

    def lm_pre_hook(mod, args, kwargs):
        cs = kwargs.get("cross_attention_states")
        if cs is not None:
            cs.retain_grad()
            acts["cross_attention_states"] = cs

    inner = model.model
    hooks = [
        inner.language_model.embed_tokens.register_forward_hook(emb_hook),
        inner.vision_model.register_forward_hook(vis_hook),
        inner.language_model.register_forward_pre_hook(lm_pre_hook, with_kwargs=True),
    ]
    try:
        model.zero_grad(set_to_none=True)
        t = to_torch(inputs, torch.float64)
        out = model(**t, use_cache=False)
        logits = out.logits
        hf_loss = float(out.loss.detach())
        loss = causal_lm_loss64(logits, t["labels"])
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    assert counts["embed"] == 1
    assert multimodal == ("vision_output" in acts) == ("cross_attention_states" in acts)
    grads = {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in model.named_parameters() if p.requires_grad}
    act_grads = {k: v.grad for k, v in acts.items()}
    return logits.detach(), loss.detach(), hf_loss, grads, acts, act_grads


# --------------------------------------------------------------------------- checks


def check_saved_checkpoint(ckpt_dir, model, storage_dtype):
    """Key names in model.safetensors (or shards) == mapped in-memory names; values == params."""
    ckpt_dir = Path(ckpt_dir)
    files = sorted(ckpt_dir.glob("*.safetensors"))
    saved = {}
    for f in files:
        with safe_open(str(f), "pt") as h:
            for k in h.keys():
                assert k not in saved, k
                saved[k] = h.get_tensor(k)
    expect = {ckpt_name(n): p for n, p in model.named_parameters()}
    assert set(saved) == set(expect), (sorted(set(saved) ^ set(expect)))[:10]
    for k, p in expect.items():
        t = saved[k]
        assert t.dtype == storage_dtype, (k, t.dtype)
        assert tuple(t.shape) == tuple(p.shape), k
        assert torch.equal(t.to(torch.float64), p.detach().to(torch.float64)), k
    return sorted(saved), files


def assert_finite(name, t):
    t = t if isinstance(t, torch.Tensor) else torch.as_tensor(t)
    assert torch.isfinite(t).all(), f"non-finite values in {name}"


def rope_bands(model, cfg_rope, hd):
    """Classify llama3 RoPE bands of the unscaled frequencies; check the model's inv_freq."""
    theta = cfg_rope["rope_theta"]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float) / hd))
    orig = cfg_rope["original_max_position_embeddings"]
    lowW, highW = orig / cfg_rope["low_freq_factor"], orig / cfg_rope["high_freq_factor"]
    wl = 2 * math.pi / inv
    bands = ["high" if w < highW else ("low" if w > lowW else "medium") for w in wl.tolist()]
    # expected scaled frequencies (float32), compare with the model buffer
    fac, lf, hf = cfg_rope["factor"], cfg_rope["low_freq_factor"], cfg_rope["high_freq_factor"]
    a = torch.where(wl > lowW, inv / fac, inv)
    s = (orig / wl - lf) / (hf - lf)
    smooth = (1 - s) * a / fac + s * a
    med = (wl >= highW) & (wl <= lowW)
    exp = torch.where(med, smooth, a)
    got = model.model.language_model.rotary_emb.inv_freq.float()
    assert torch.allclose(got, exp, rtol=1e-6, atol=0), (got, exp)
    return bands, wl.tolist()


# --------------------------------------------------------------------------- cases


def build_model(config_kwargs, seed, storage_dtype):
    torch.manual_seed(seed)  # HF init draws (overwritten anyway)
    cfg = MllamaConfig(**config_kwargs)
    model = MllamaForConditionalGeneration(cfg).float()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    gen = torch.Generator().manual_seed(seed)
    kinds = randomize(model, gen)
    round_params_(model, storage_dtype)
    for n, p in model.named_parameters():
        if kinds[n] == "gate":
            assert (p.abs() >= 0.29).all(), n
    model.eval()
    return model, kinds, gen


def save_checkpoint(model, out_dir, storage_dtype, **kw):
    """save_pretrained in the storage dtype (the in-memory reference model stays float32,
    so its float32 RoPE inv_freq buffer is never rounded)."""
    if storage_dtype == torch.float32:
        m = model
    else:
        m = copy.deepcopy(model).to(storage_dtype)
        m.config.dtype = storage_dtype
    m.save_pretrained(str(out_dir), **kw)
    gc = Path(out_dir) / "generation_config.json"
    if gc.exists():
        gc.unlink()  # not part of what the engine loads; keeps the folder to config + weights
    cfg = json.loads((Path(out_dir) / "config.json").read_text())
    return cfg


def write_reference(path, logits, loss, grads, acts, act_grads, metadata, extra=None):
    tensors = {"logits": f32(logits), "loss": np.array([float(loss)], np.float32)}
    for name, g in grads.items():
        tensors["grad." + name] = g
    for k in ("cross_attention_states", "vision_output"):
        if k in acts:
            tensors["act." + k] = f32(acts[k])
            tensors["grad_act." + k] = f32(act_grads[k])
    if "inputs_embeds" in act_grads:
        tensors["grad_act.inputs_embeds"] = f32(act_grads["inputs_embeds"])
    if extra:
        tensors.update(extra)
    for k, v in tensors.items():
        assert np.isfinite(v).all(), k
    save_file(tensors, str(path), metadata=pack_meta(metadata))
    return tensors


def pack_meta(meta):
    """safetensors serializes a multi-key metadata map in hash order (not reproducible), so all
    information goes into ONE key, "info", holding a JSON object with sorted keys."""
    return {"info": json.dumps({k: str(v) for k, v in meta.items()}, sort_keys=True)}


def base_metadata():
    return {
        "generator": "tools/make_mllama_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "compute_dtype": "float64",
        "attn_implementation": "sdpa",
        "loss": "causal LM: target[b,s]=labels[b,s+1], mean over non-ignored targets of the batch, float64",
    }


def full_grads(model, grads):
    """checkpoint-named float32 grads for EVERY parameter; None -> zeros (listed)."""
    out, none = {}, []
    for n, p in model.named_parameters():
        g = grads.get(n)
        if g is None:
            none.append(ckpt_name(n))
            out[ckpt_name(n)] = np.zeros(tuple(p.shape), np.float32)
        else:
            out[ckpt_name(n)] = f32(g)
    return out, none


def consistency_checks(model, inputs, logits, acts, act_grads, grads, pad_id):
    # padding_idx quirk: the pad row of embed_tokens gets exactly zero gradient
    eg = grads["model.language_model.embed_tokens.weight"]
    assert torch.count_nonzero(eg[pad_id]) == 0
    # projector gradient == sum over tokens of grad(cs) x vision_output
    if "vision_output" in acts:
        vo = acts["vision_output"].detach()
        gcs = act_grads["cross_attention_states"]
        Dv, H = vo.shape[-1], gcs.shape[-1]
        dW = gcs.reshape(-1, H).T @ vo.reshape(-1, Dv)
        gw = grads["model.multi_modal_projector.weight"]
        assert torch.allclose(dW, gw, rtol=1e-9, atol=1e-12 * float(gw.abs().max())), float((dW - gw).abs().max())
        # and grad(vision_output) == grad(cs) @ W
        W = model.model.multi_modal_projector.weight.detach()
        gvo = (gcs.reshape(-1, H) @ W).reshape(vo.shape)
        assert torch.allclose(gvo, act_grads["vision_output"], rtol=1e-9, atol=1e-14)


def case_tiles4_gqa(root):
    name = "tiles4_gqa"
    V, PAD = 96, 2
    rope = {
        "rope_type": "llama3",
        "rope_theta": 10000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        # 64 (not 16): with hd=8 the wavelengths are 2*pi*{1,10,100,1000}; 16 would give
        # no high band (highW=4 < 2*pi). 64 -> highW=16, lowW=64 -> bands high, medium, low, low.
        "original_max_position_embeddings": 64,
    }
    config = dict(
        vision_config=dict(
            hidden_size=24, attention_heads=3, num_hidden_layers=3, num_global_layers=2,
            intermediate_size=48, image_size=12, patch_size=3, intermediate_layers_indices=[0, 2],
            vision_output_dim=24 * 3, norm_eps=1e-2, max_num_tiles=4, supported_aspect_ratios=DEFAULT_ASPECTS,
        ),
        text_config=dict(
            vocab_size=V, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=5,
            cross_attention_layers=[1, 3], intermediate_size=48, rms_norm_eps=1e-3, rope_parameters=rope,
            max_position_embeddings=256, pad_token_id=PAD, bos_token_id=0, eos_token_id=1, dropout=0.0,
        ),
        image_token_index=V,
    )
    model, kinds, gen = build_model(config, seed=1234, storage_dtype=torch.float32)
    bands, wl = rope_bands(model, rope, 8)
    assert set(bands) == {"high", "medium", "low"}, bands

    T = ["T"]
    spec = dict(
        S=14, I=2, T=4, image_size=12, vocab=V, image_token=V, pad=PAD,
        samples=[
            # two images (2x2 -> aspect id 6, 4 tiles; 1x2 -> id 2, 2 tiles); pad id at attended position 5
            dict(ids=T * 2 + ["IMG"] + T * 2 + ["PAD"] + T + ["IMG"] + T * 6, mask=[1] * 14, images=[(6, 4), (2, 2)]),
            # one 3x1 image (id 7, 3 tiles) + padded slot; 3 right-pad tokens
            dict(ids=T * 3 + ["IMG"] + T * 7 + ["PAD"] * 3, mask=[1] * 11 + [0] * 3, images=[(7, 3)]),
            # one 1x1 image (id 1) + padded slot; 2 left-pad tokens
            dict(ids=["PAD"] * 2 + T * 3 + ["IMG"] + T * 8, mask=[0] * 2 + [1] * 12, images=[(1, 1)]),
        ],
    )
    inputs = make_inputs(spec, gen)

    case_dir = root / name
    case_dir.mkdir()
    saved_cfg = save_checkpoint(model, case_dir, torch.float32)
    keys, files = check_saved_checkpoint(case_dir, model, torch.float32)
    assert [f.name for f in files] == ["model.safetensors"]
    shard_dir = root / (name + "_sharded")
    shard_dir.mkdir()
    save_checkpoint(model, shard_dir, torch.float32, max_shard_size="150KB")
    skeys, sfiles = check_saved_checkpoint(shard_dir, model, torch.float32)
    index = json.loads((shard_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(skeys) and 2 <= len(sfiles) <= 3, [f.name for f in sfiles]
    assert sorted(set(index["weight_map"].values())) == [f.name for f in sfiles]

    save_file({k: np.ascontiguousarray(v) for k, v in inputs.items()}, str(case_dir / "inputs.safetensors"))

    m64 = copy.deepcopy(model).double()
    logits, loss, hf_loss, grads, acts, agrads = run_reference(m64, inputs, multimodal=True)
    assert_finite("logits", logits)
    assert abs(hf_loss - float(loss)) <= 1e-5 * abs(float(loss)), (hf_loss, float(loss))
    consistency_checks(m64, inputs, logits, acts, agrads, grads, PAD)
    named, none = full_grads(m64, grads)
    assert not none, none
    meta = base_metadata()
    meta.update(case=name, hf_loss_fp32=repr(hf_loss), rope_bands=",".join(bands), none_grads="")
    ref = write_reference(case_dir / "reference.safetensors", logits, loss, named, acts, agrads, meta)
    info = dict(config=saved_cfg, keys=keys, shards=[f.name for f in sfiles], inputs={k: (v.dtype.name, v.shape) for k, v in inputs.items()},
                loss=float(loss), hf_loss=hf_loss, bands=bands, wavelengths=wl, n_params=sum(p.numel() for p in model.parameters()),
                ref_keys=sorted(ref))
    return model, inputs, info


def case_tile1_bf16(root):
    name = "tile1_bf16"
    V, PAD = 64, 3
    config = dict(
        vision_config=dict(
            hidden_size=16, attention_heads=2, num_hidden_layers=3, num_global_layers=1,
            intermediate_size=32, image_size=10, patch_size=2, intermediate_layers_indices=[0, 2],
            vision_output_dim=16 * 3, norm_eps=0.3, max_num_tiles=1, supported_aspect_ratios=[[1, 1]],
        ),
        text_config=dict(
            vocab_size=V, hidden_size=24, num_attention_heads=3, num_key_value_heads=1, num_hidden_layers=4,
            cross_attention_layers=[0, 2], intermediate_size=40, rms_norm_eps=0.05,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            max_position_embeddings=256, pad_token_id=PAD, bos_token_id=0, eos_token_id=1, dropout=0.0,
        ),
        image_token_index=V,
    )
    model, kinds, gen = build_model(config, seed=4321, storage_dtype=torch.bfloat16)
    T = ["T"]
    spec = dict(
        S=9, I=1, T=1, image_size=10, vocab=V, image_token=V, pad=PAD, round_pixels_bf16=True,
        samples=[
            dict(ids=T + ["IMG"] + T * 2 + ["PAD"] + T * 4, mask=[1] * 9, images=[(1, 1)]),
            dict(ids=T * 7 + ["PAD"] * 2, mask=[1] * 7 + [0] * 2, images=[]),  # no image
        ],
    )
    inputs = make_inputs(spec, gen)
    assert inputs["cross_attention_mask"][1].sum() == 0 and inputs["aspect_ratio_ids"][1, 0] == 0
    text_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "labels")}

    case_dir = root / name
    case_dir.mkdir()
    saved_cfg = save_checkpoint(model, case_dir, torch.bfloat16)
    keys, files = check_saved_checkpoint(case_dir, model, torch.bfloat16)
    save_file({k: np.ascontiguousarray(v) for k, v in inputs.items()}, str(case_dir / "inputs.safetensors"))
    save_file({k: np.ascontiguousarray(v) for k, v in text_inputs.items()}, str(case_dir / "inputs_text_only.safetensors"))

    m64 = copy.deepcopy(model).double()
    infos = {}
    for tag, inp, mm in (("", inputs, True), ("_text_only", text_inputs, False)):
        logits, loss, hf_loss, grads, acts, agrads = run_reference(m64, inp, multimodal=mm)
        assert_finite("logits", logits)
        assert abs(hf_loss - float(loss)) <= 1e-5 * abs(float(loss)), (hf_loss, float(loss))
        consistency_checks(m64, inp, logits, acts, agrads, grads, PAD)
        named, none = full_grads(m64, grads)
        if mm:
            assert not none, none
        else:
            expect_none = {ckpt_name(n) for n, _ in m64.named_parameters()
                           if not n.startswith("model.language_model.") and n != "lm_head.weight"
                           or any(n.startswith(f"model.language_model.layers.{c}.") for c in (0, 2))}
            assert set(none) == expect_none, sorted(set(none) ^ expect_none)
        meta = base_metadata()
        meta.update(case=name + tag, hf_loss_fp32=repr(hf_loss), storage_dtype="bfloat16",
                    none_grads=",".join(none),
                    none_grads_note="parameters whose autograd grad was None are stored as zeros" if none else "")
        ref = write_reference(case_dir / f"reference{tag}.safetensors", logits, loss, named, acts, agrads, meta)
        infos[tag or "mm"] = dict(loss=float(loss), hf_loss=hf_loss, none=none, ref_keys=sorted(ref), logits=logits)
    diff = (infos["mm"]["logits"][1] - infos["_text_only"]["logits"][1]).abs().max().item()
    info = dict(config=saved_cfg, keys=keys, inputs={k: (v.dtype.name, v.shape) for k, v in inputs.items()},
                n_params=sum(p.numel() for p in model.parameters()), runs=infos, nonimage_sample_mm_vs_textonly=diff)
    return info


def case_peft_mixed(root, base_model_f32, inputs):
    """LoRA on the tiles4_gqa base; adapter + references in tiles4_gqa/peft/."""
    base_dir = root / "tiles4_gqa"
    out_dir = base_dir / "peft"
    base = MllamaForConditionalGeneration.from_pretrained(str(base_dir), dtype=torch.float32)
    base.eval()
    for (n1, p1), (n2, p2) in zip(base.named_parameters(), base_model_f32.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), n1

    rank_pattern = {
        r"model\.vision_model\.transformer\.layers\.[02]\.self_attn\.(q_proj|v_proj)": 2,
        r"model\.vision_model\.global_transformer\.layers\.1\.mlp\.fc[12]": 2,
        r"model\.language_model\.layers\.[13]\.cross_attn\.(k_proj|o_proj)": 8,
        r"model\.language_model\.layers\.(0|4)\.mlp\.down_proj": 8,
        r"model\.language_model\.layers\.2\.self_attn\.q_proj": 2,
    }
    alpha_pattern = {
        r"model\.language_model\.layers\.3\.cross_attn\.o_proj": 32,
        r"model\.vision_model\.global_transformer\.layers\.1\.mlp\.fc1": 3,
        r"model\.language_model\.layers\.1\.mlp\.up_proj": 16,
    }
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", target_modules=list(LORA_TARGETS),
                      rank_pattern=dict(rank_pattern), alpha_pattern=dict(alpha_pattern))
    pm = get_peft_model(base, lcfg)
    pm.peft_config["default"].base_model_name_or_path = ".."  # the base checkpoint is the parent folder
    pm.eval()

    # independent expectation: full-match of the patterns against the module names
    from peft.tuners.lora import LoraLayer
    wrapped = [(n[len("base_model.model."):], m) for n, m in pm.named_modules() if isinstance(m, LoraLayer)]
    expect_scaling = {}
    for n, m in wrapped:
        assert n.split(".")[-1] in LORA_TARGETS, n
        rk = [k for k in rank_pattern if re.fullmatch(k, n)]
        ak = [k for k in alpha_pattern if re.fullmatch(k, n)]
        assert len(rk) <= 1 and len(ak) <= 1, n
        r = rank_pattern[rk[0]] if rk else 4
        alpha = alpha_pattern[ak[0]] if ak else 8
        assert m.r["default"] == r, (n, m.r["default"], r)
        assert m.scaling["default"] == alpha / r, (n, m.scaling["default"], alpha / r)
        expect_scaling[n] = (r, alpha, alpha / r)
    # every pattern used, and all non-target nn.Linear leaves are outside the vision/text attention+MLP
    for k in list(rank_pattern) + list(alpha_pattern):
        assert any(re.fullmatch(k, n) for n, _ in wrapped), k

    gen = torch.Generator().manual_seed(777)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    trainable = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A.default.weight" in n or ".lora_B.default.weight" in n for n in trainable)

    pm.save_pretrained(str(out_dir), save_embedding_layers=False)
    card = out_dir / "README.md"
    if card.exists():
        card.unlink()  # auto-generated model card, not needed
    acfg = json.loads((out_dir / "adapter_config.json").read_text())
    with safe_open(str(out_dir / "adapter_model.safetensors"), "pt") as h:
        akeys = sorted(h.keys())
        saved = {k: h.get_tensor(k) for k in akeys}
    name_map = {n: n.replace(".default.weight", ".weight") for n in trainable}
    assert sorted(name_map.values()) == akeys, sorted(set(name_map.values()) ^ set(akeys))[:6]
    for n, k in name_map.items():
        assert saved[k].dtype == torch.float32 and torch.equal(saved[k], dict(pm.named_parameters())[n].detach())

    pm64 = pm.double()
    pm64.eval()
    t = to_torch(inputs, torch.float64)
    pm64.zero_grad(set_to_none=True)
    out = pm64(**t, use_cache=False)
    logits = out.logits
    hf_loss = float(out.loss.detach())
    loss = causal_lm_loss64(logits, t["labels"])
    loss.backward()
    assert_finite("logits", logits)
    loss = loss.detach()
    assert abs(hf_loss - float(loss)) <= 1e-5 * abs(float(loss))
    params = dict(pm64.named_parameters())
    grads = {}
    for n in trainable:
        g = params[n].grad
        assert g is not None and torch.isfinite(g).all() and torch.count_nonzero(g) > 0, n
        grads["grad." + name_map[n]] = f32(g)
    for n, p in pm64.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n

    with torch.no_grad():
        merged = copy.deepcopy(pm64).merge_and_unload()
        merged.eval()
        mlogits = merged(**{k: v for k, v in t.items() if k != "labels"}, use_cache=False).logits
        merge_diff = (mlogits - logits).abs().max().item()
        # reload check: PeftModel.from_pretrained restores the mixed ranks / scalings exactly
        base2 = MllamaForConditionalGeneration.from_pretrained(str(base_dir), dtype=torch.float32)
        re_pm = PeftModel.from_pretrained(base2, str(out_dir)).double().eval()
        rlogits = re_pm(**{k: v for k, v in t.items() if k != "labels"}, use_cache=False).logits
        reload_diff = (rlogits - logits).abs().max().item()
    scale = logits.abs().max().item()
    assert merge_diff <= 1e-9 * scale, merge_diff
    assert reload_diff == 0.0 or reload_diff <= 1e-12 * scale, reload_diff
    # LoRA must actually change the output
    base_logits = None
    with torch.no_grad(), pm64.disable_adapter():
        base_logits = pm64(**{k: v for k, v in t.items() if k != "labels"}, use_cache=False).logits
    lora_effect = (base_logits - logits).abs().max().item()
    assert lora_effect > 1e-2 * scale, lora_effect

    meta = base_metadata()
    meta.update(case="peft_mixed", hf_loss_fp32=repr(hf_loss), base="tiles4_gqa (parent folder)",
                trainable="LoRA A/B only", merge_max_abs_diff=repr(merge_diff))
    tensors = {"logits": f32(logits), "loss": np.array([float(loss)], np.float32), "merged_logits": f32(mlogits)}
    tensors.update(grads)
    for k, v in tensors.items():
        assert np.isfinite(v).all(), k
    save_file(tensors, str(out_dir / "reference.safetensors"), metadata=pack_meta(meta))
    return dict(adapter_config=acfg, wrapped=[n for n, _ in wrapped], scalings=expect_scaling, adapter_keys=akeys,
                loss=float(loss), hf_loss=hf_loss, merge_diff=merge_diff, reload_diff=reload_diff,
                lora_effect=lora_effect, ref_keys=sorted(tensors))


# --------------------------------------------------------------------------- main


def main():
    # PEFT stores target_modules from a Python set: pin the hash seed so its JSON order is stable.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    ap.add_argument("--summary", default=None, help="optional path for a JSON summary of what was built")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    final = Path(args.out).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mllama.tmp-", dir=str(final.parent)))
    os.chmod(tmp, 0o755)
    try:
        log("case tiles4_gqa (+ tiles4_gqa_sharded)")
        model1, inputs1, info1 = case_tiles4_gqa(tmp)
        log("case tile1_bf16 (+ text-only)")
        info2 = case_tile1_bf16(tmp)
        log("case peft_mixed (tiles4_gqa/peft)")
        info3 = case_peft_mixed(tmp, model1, inputs1)
        # no temp path may leak into any written text file
        for f in tmp.rglob("*.json"):
            assert ".mllama.tmp-" not in f.read_text(), f
        for d, dirs, files in os.walk(tmp):
            for x in dirs:
                os.chmod(os.path.join(d, x), 0o755)
            for x in files:
                os.chmod(os.path.join(d, x), 0o644)
        if (final / "README.md").exists():
            shutil.copy2(final / "README.md", tmp / "README.md")
        if final.exists():
            old = final.parent / f".mllama.old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {final}")
    if args.summary:
        def conv(o):
            if isinstance(o, torch.Tensor):
                return None
            if isinstance(o, tuple):
                return list(o)
            return str(o)
        info2 = {k: v for k, v in info2.items()}
        info2["runs"] = {k: {kk: vv for kk, vv in v.items() if kk != "logits"} for k, v in info2["runs"].items()}
        Path(args.summary).write_text(json.dumps(dict(tiles4_gqa=info1, tile1_bf16=info2, peft_mixed=info3), indent=1, default=conv))


if __name__ == "__main__":
    main()

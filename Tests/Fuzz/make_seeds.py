#!/usr/bin/env python3
"""Writes the committed seed corpora in Tests/Fuzz/corpus/<target>/ (a few small valid and edge-case
inputs per target). Run from the repository root: python3 Tests/Fuzz/make_seeds.py"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "LoRANASTests", "Fixtures", "mllama")


def st(header, data=b"", pad=True):
    """A safetensors file: u64 header length, header JSON (space-padded to 8), data."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def put(target, name, blob):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob if isinstance(blob, bytes) else blob.encode())


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    f32 = struct.pack("<3f", 1.0, -2.0, 0.5)
    # safetensors
    put("safetensors", "f32", st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}, f32))
    put("safetensors", "mixed", st({"__metadata__": {"format": "pt"},
                                    "b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                                    "h": {"dtype": "F16", "shape": [1, 2], "data_offsets": [4, 8]},
                                    "i": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]},
                                    "u": {"dtype": "U8", "shape": [2], "data_offsets": [16, 18]}},
                                   struct.pack("<4H", 0x3FC0, 0xC020, 0x3C00, 0xC500) + struct.pack("<q", -7)
                                   + b"\x01\x02"))
    put("safetensors", "empty-header", st({}))
    put("safetensors", "zero-size", st({"z": {"dtype": "F64", "shape": [0, 4], "data_offsets": [0, 0]},
                                        "s": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]}}, b"\x05\0\0\0"))
    put("safetensors", "overlap", st({"a": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]},
                                      "b": {"dtype": "I8", "shape": [2], "data_offsets": [1, 3]}}, b"abc"))
    put("safetensors", "short", b"\x10\0\0\0\0\0\0\0{}")
    with open(os.path.join(FIX, "tile1_bf16", "inputs_text_only.safetensors"), "rb") as f:
        put("safetensors", "fixture-inputs", f.read())
    # json
    for i, text in enumerate([
        '{"a":[1,-2.5e3,true,false,null],"b":{"c":"\\u00e9\\ud83d\\ude00\\n"}}',
        '[NaN,Infinity,-Infinity,1e308,-0.0,12345678901234567]',
        '{"k":1,"k":2}',
        '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
        '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
        ' {"x" : [ ] , "y" : { } } ',
    ]):
        put("json", f"seed{i}", text)
    # config
    for name in ["tile1_bf16", "tiles4_gqa"]:
        with open(os.path.join(FIX, name, "config.json"), "rb") as f:
            put("config", name, f.read())
    with open(os.path.join(FIX, "tile1_bf16", "config.json")) as f:
        cfg = json.load(f)
    cfg["text_config"].pop("rope_parameters")
    cfg["text_config"]["rope_theta"] = 10000.0
    cfg["text_config"]["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    cfg["text_config"]["pad_token_id"] = None
    put("config", "llama3-rope", json.dumps(cfg, separators=(",", ":")))
    put("config", "minimal", '{"vision_config":{},"text_config":{}}')
    # adapter-config (the fuzz target's adapter holds one rank-2 q_proj module of layer 0)
    with open(os.path.join(FIX, "tiles4_gqa", "peft", "adapter_config.json"), "rb") as f:
        put("adapter-config", "fixture", f.read())
    put("adapter-config", "plain", json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "bias": "none"}))
    put("adapter-config", "patterns", json.dumps({
        "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"],
        "rank_pattern": {"model\\.language_model\\.layers\\.0\\.self_attn\\.q_proj": 2},
        "alpha_pattern": {"layers\\.[0-9]+\\.self_attn\\.(q|k)_proj": 3.5}}))
    put("adapter-config", "mismatch", json.dumps({"r": 4, "rank_pattern": {"v_proj": 2}, "use_dora": False}))
    # run-state: state.safetensors as Search / Finetune write it
    loop = {"epoch": 1, "step_in_epoch": 2, "global_step": 5, "val_cursor": 3,
            "epoch_times": [0.5], "current_epoch_time": 0.25}
    search = {"kind": "search", "fingerprint": "abc", "loop": loop, "opt_w_steps": 5, "opt_a_steps": 5}
    tensors = {"train_losses": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}
    put("run-state", "search", st({"__metadata__": {"loranas_state": json.dumps(search, separators=(",", ":"))},
                                   **tensors}, f32))
    finetune = {"kind": "finetune", "fingerprint": "x", "loop": loop, "opt_steps": 5, "dropout_rng": ["12"],
                "evaluations": [{"loss": 1.5, "perplexity": 4.48, "mean_batch_loss": 1.5, "tokens": 10}]}
    put("run-state", "finetune", st({"__metadata__": {"loranas_state": json.dumps(finetune)}, **tensors}, f32))
    put("run-state", "no-state", st({"__metadata__": {"format": "pt"}}))
    put("run-state", "bad-loop", st({"__metadata__": {"loranas_state": '{"loop":{"epoch":1.5}}'}}))


if __name__ == "__main__":
    main()

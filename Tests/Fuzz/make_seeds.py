#!/usr/bin/env python3
"""Writes the committed seed corpora in Tests/Fuzz/corpus/<target>/ (a few small valid and edge-case
inputs per target). Run from the repository root: python3 Tests/Fuzz/make_seeds.py [target ...]
(default: every target it writes). A target's old seeds are replaced, except the crash-* files the
fuzzers found, and targets whose seeds are not made here (image) are left alone."""
import json
import os
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "LoRANASTests", "Fixtures", "mllama")


def st(header, data=b"", pad=True):
    """A safetensors file: u64 header length, header JSON (space-padded to 8), data."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


ONLY = set()
CLEARED = set()


def put(target, name, blob):
    if ONLY and target not in ONLY:
        return
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if target not in CLEARED:
        CLEARED.add(target)
        for old in os.listdir(d):
            if not old.startswith("crash-"):
                os.remove(os.path.join(d, old))
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob if isinstance(blob, bytes) else blob.encode())


def main():
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


    pack_seeds()
    tokenizer_seeds()


def pack(samples, meta=None, version=1, tile=2, max_tiles=4):
    """A pack (docs/pack-format.md). samples: (ids, labels, [(rows, cols, aspect ratio id)]); canvases get
    a fixed byte pattern."""
    m = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "format_version": 1,
         "image_processor": {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                             "max_image_tiles": max_tiles, "rescale_factor": 1 / 255, "tile_size": tile},
         "image_token_id": 60, "max_length": None, "pad_token_id": 63, "sample_count": len(samples),
         "skipped_count": 0, "source": "seed.jsonl", "vocab_size": 64}
    m.update(meta or {})
    js = json.dumps(m, sort_keys=True, separators=(",", ":")).encode() + b" " * 8
    head = b"LRNSPACK" + struct.pack("<II", version, len(js)) + js
    body, index = b"", b""
    for ids, labels, images in samples:
        rec = struct.pack(f"<{len(ids)}i", *ids) + struct.pack(f"<{len(labels)}i", *labels)
        for rows, cols, ratio in images:
            rec += struct.pack("<4I", rows, cols, tile, ratio)
            rec += bytes((i * 37) & 255 for i in range(rows * tile * cols * tile * 3))
        index += struct.pack("<QQIIII", len(head) + len(body), len(rec), len(ids), len(images), zlib.crc32(rec), 0)
        body += rec
    counted = struct.pack("<QQ", len(head) + len(body), len(samples))
    crc = zlib.crc32(head + index + counted)
    return head + body + index + counted + struct.pack("<II", crc, 0) + b"LRNSPACK"


def pack_seeds():
    text = [([1, 2, 3], [-100, 2, 3], []), ([5, 6], [-100, -100], [])]
    images = [([60, 7, 8], [-100, 7, -100], [(1, 1, 1)]),
              ([60, 60, 9, 10], [-100, -100, 9, 10], [(2, 2, 6), (1, 2, 2)])]
    put("pack", "text", pack(text))
    put("pack", "images", pack(images))
    put("pack", "one-tile", pack([([60, i], [-100, i], [(1, 1, 1)]) for i in range(8)], tile=1, max_tiles=1))
    put("pack", "optionals", pack(text, meta={"max_length": 16, "pad_token_id": None, "source": "x\u00e9"}))
    put("pack", "version2", pack(text, version=2))
    put("pack", "truncated", pack(images)[:-5])
    damaged = bytearray(pack(images))
    damaged[len(damaged) - 32 - 32 * len(images) - 3] ^= 1  # in the last record
    put("pack", "bad-record-crc", bytes(damaged))


def byte_alphabet():
    """GPT-2's bytes_to_unicode: the printable stand-in of each byte."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def added(i, content, special=True, lstrip=False):
    return {"id": i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": not special, "special": special}


def tokenizer_seeds():
    for name in ["bpe.json", "wordlevel.json"]:
        with open(os.path.join(FIX, "..", "tokenizer", name), "rb") as f:
            put("tokenizer", "fixture-" + name, f.read())
    words = ["[UNK]", "[CLS]", "[SEP]", "hello", "world", "a", "cat", ".", "!"]
    put("tokenizer", "wordlevel", json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]"), added(9, "<mask>", lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}}},
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(words)}, "unk_token": "[UNK]"}}))
    alphabet = byte_alphabet()
    merges = [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["c", "a"], ["ca", "t"], ["\u0120", "ca"],
              ["\u0120ca", "t"], ["l", "l"], ["e", "ll"], ["h", "ell"], ["hell", "o"]]
    vocab = {c: i for i, c in enumerate(alphabet)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    n = len(vocab)
    put("tokenizer", "bytelevel-bpe", json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(n, "<|begin_of_text|>"), added(n + 1, "<|image|>")],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": " ?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges}}, ensure_ascii=False))


if __name__ == "__main__":
    ONLY.update(sys.argv[1:])
    main()

#!/usr/bin/env python3
"""Write bench/configs/<size>/config.json for the side-by-side Mllama benchmark.

The sizes come from ../shared/bench-configs.json (beside the checkout) (tiny, small, medium). Each file is a full
MllamaConfig (every field written, no weights) so the Swift engine and the PyTorch script build
models of identical shape from the same file.

Fixed choices on top of bench-configs.json:
  vision: intermediate_layers_indices [0, 1], vision_output_dim = 3 x vision hidden_size
  text:   bos 1, eos 2, pad 3, max_position_embeddings 1024, dropout 0, rope default (theta 500000)
  top:    image_token_index = vocab_size - 1 (as bench-configs.json says). forward() never reads it;
          the benchmark inputs put id vocab_size (the first of the 8 extra embedding rows) at the
          image position and label it -100, so no label falls outside the vocab_size logits.

Usage: .venv-test/bin/python bench/make_configs.py [--source ../shared/bench-configs.json]
"""
import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "bench-configs.json"   # ../shared from the repository root


def mllama_config_dict(size_spec):
    """The kwargs for MllamaConfig for one size of bench-configs.json."""
    v, t = dict(size_spec["vision"]), dict(size_spec["text"])
    layers = [0, 1]
    vision = dict(
        v,
        intermediate_layers_indices=layers,
        vision_output_dim=v["hidden_size"] * (len(layers) + 1),
    )
    text = dict(
        t,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        max_position_embeddings=1024,
        dropout=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    )
    return dict(vision_config=vision, text_config=text, image_token_index=t["vocab_size"] - 1)


def build_config(size_spec):
    from transformers import MllamaConfig

    cfg = MllamaConfig(**mllama_config_dict(size_spec))
    v, t = cfg.vision_config, cfg.text_config
    # The gotchas from mllama-facts.md, checked rather than trusted.
    assert v.vision_output_dim == v.hidden_size * (len(v.intermediate_layers_indices) + 1)
    assert all(0 <= i < v.num_hidden_layers for i in v.intermediate_layers_indices)
    assert v.max_num_tiles == 4 and len(v.supported_aspect_ratios) == 8
    assert 0 <= t.pad_token_id < t.vocab_size
    assert all(0 <= i < t.num_hidden_layers for i in t.cross_attention_layers)
    assert v.hidden_size % v.attention_heads == 0 and v.image_size % v.patch_size == 0
    assert t.hidden_size % t.num_attention_heads == 0 and t.num_attention_heads % t.num_key_value_heads == 0
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="bench-configs.json with the sizes")
    ap.add_argument("--out", type=Path, default=HERE / "configs", help="folder that gets <size>/config.json")
    args = ap.parse_args()

    sizes = json.loads(args.source.read_text())["sizes"]
    for name, spec in sizes.items():
        cfg = build_config(spec)
        d = args.out / name
        d.mkdir(parents=True, exist_ok=True)
        cfg.dtype = "float32"
        cfg.architectures = ["MllamaForConditionalGeneration"]
        # use_diff=False: write every field, so neither side depends on the other's defaults.
        cfg.to_json_file(d / "config.json", use_diff=False)
        print(f"wrote {d / 'config.json'}")


if __name__ == "__main__":
    main()

"""Builds the demo base shipped in python/loranas/demo/base: a small pretrained Mllama.

    python tools/make_demo_base.py [--out python/loranas/demo/base] [--work /tmp/demo-base] [--threads 2]

1. Draws the pretraining mix: captions of every task's kind of image (``loranas.tasks.make_captions``, a seed
   stream disjoint from the tasks' splits) — descriptions only, never the tasks' question-answer formats.
2. Trains a byte-level BPE with HF tokenizers on the captions and the tasks' texts, laid out as Llama-3's
   tokenizer.json (the same pre-tokenizer regex, byte-level decoder and <|begin_of_text|> template) with
   Llama-3's special tokens and <|image|> last.
3. Writes config.json (MODEL below), the processor files and the published chat template.
4. Trains every weight from transformers' initialization with the engine's ``loranas.pretrain``.
5. Saves model.safetensors as bfloat16.

Needs the loranas package, numpy, Pillow, scikit-learn (the digits task) and tokenizers (this script only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import loranas
from loranas import tasks

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "python" / "tests" / "fixtures" / "llama32-vision-chat-template.jinja"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>", "<|image|>"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGE_SIZE = 112
# Text the chat template itself writes, so its words get tokens of their own.
TEMPLATE_TEXT = ["system", "user", "assistant", "Cutting Knowledge Date: December 2023", "Today Date: 26 Jul 2024"]

VISION = {"hidden_size": 128, "num_hidden_layers": 4, "num_global_layers": 1, "attention_heads": 4,
          "intermediate_size": 512, "image_size": IMAGE_SIZE, "patch_size": 14, "max_num_tiles": 1,
          "supported_aspect_ratios": [[1, 1]], "intermediate_layers_indices": [1, 3], "vision_output_dim": 384,
          "num_channels": 3, "norm_eps": 1e-5}
TEXT = {"hidden_size": 192, "num_hidden_layers": 6, "cross_attention_layers": [2, 5], "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 512, "max_position_embeddings": 512, "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE laid out as Llama-3's tokenizer.json, with the special tokens after the merges."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens(SPECIAL)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A:0 <|begin_of_text|>:1 $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])
    return tok


def corpus(captions: Path, task_files: dict) -> list[str]:
    """Every text of the captions file and of the tasks' train splits, and the chat template's words."""
    texts = list(TEMPLATE_TEXT)
    files = [captions] + [splits["train"] for splits in task_files.values()]
    for path in files:
        for line in path.read_text().splitlines():
            for turn in json.loads(line)["texts"]:
                texts += [turn["user"], turn["assistant"]]
    return texts


def write_model_files(out: Path, tok) -> None:
    """config.json, tokenizer files, preprocessor_config.json and chat_template.jinja."""
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in SPECIAL}
    vocab = tok.get_vocab_size() - 1  # <|image|> is the last id, outside the LM head, as in Llama-3.2-Vision
    assert ids["<|image|>"] == vocab, ids
    text = {**TEXT, "vocab_size": vocab, "bos_token_id": ids["<|begin_of_text|>"],
            "eos_token_id": ids["<|eot_id|>"], "pad_token_id": ids["<|finetune_right_pad_id|>"]}
    config = {"architectures": ["MllamaForConditionalGeneration"], "model_type": "mllama",
              "image_token_index": ids["<|image|>"], "vision_config": VISION, "text_config": text}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|finetune_right_pad_id|>",
        "padding_side": "right", "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512},
        indent=2) + "\n")
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "MllamaImageProcessor", "processor_class": "MllamaProcessor",
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "max_image_tiles": 1, "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD, "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
        "do_resize": True, "resample": 2, "rescale_factor": 1 / 255}, indent=2) + "\n")
    shutil.copy(TEMPLATE, out / "chat_template.jinja")


def pretrain(model_dir: Path, captions: Path, args) -> loranas.PretrainResult:
    model = loranas.init_model(model_dir, seed=args.seed)
    data = loranas.Dataset.from_cauldron(captions, model=model)
    train, val = data.split(0.05, seed=args.seed)
    print(f"pretraining {model.config['total_parameters']:,} parameters on {len(train)} captions "
          f"({len(val)} held out)", flush=True)
    result = loranas.pretrain(model, train, val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              warmup_steps=args.warmup, seed=args.seed, progress=True,
                              checkpoint_dir=args.work / "checkpoint", checkpoint_every=100)
    model.save_merged(model_dir, dtype="bfloat16")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "python" / "loranas" / "demo" / "base")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "loranas-demo-base")
    p.add_argument("--captions-per-task", type=int, default=1000)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        loranas.set_num_threads(args.threads)
    t0 = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    captions = tasks.make_captions(args.work / "data", n_per_task=args.captions_per_task, seed=args.seed,
                                   image_size=IMAGE_SIZE)
    task_files = tasks.make(args.work / "data", n_train=200, n_val=0, n_eval=0, seed=args.seed,
                            image_size=IMAGE_SIZE)
    staging = args.work / "model"
    shutil.rmtree(staging, ignore_errors=True)
    write_model_files(staging, train_tokenizer(corpus(captions, task_files), args.vocab_size))
    result = pretrain(staging, captions, args)
    result.save(staging.parent / "pretrain.json")
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(staging, args.out)
    print(f"validation perplexity {result.initial_evaluation['perplexity']:.1f} -> {result.eval_perplexity[-1]:.2f}; "
          f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

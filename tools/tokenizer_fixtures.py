"""Writes the small tokenizer.json files of Tests/LoRANASTests/Fixtures/tokenizer (a byte-level BPE
with the Llama-3 split and a WordLevel) with HF tokenizers, and prints the ids HF gives for the
strings TokenizerTests checks, as Swift literals.
Usage: python tools/tokenizer_fixtures.py   (needs tokenizers)
"""
import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = Path(__file__).resolve().parents[1] / "Tests/LoRANASTests/Fixtures/tokenizer"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = ["the cat sat on the mat", "the dog's bone", "hello world, hello there", "1234 5678", "naïve café",
          "I'm done.\n\nNext line", "    indented code()"]
BPE_STRINGS = ["the cat", "hello  world\n\n", "naïve 12345", "<s>the<|image|>dog's", "", "ÿ😀 x", "CAT'S the"]
WL_STRINGS = ["the cat sat", "a new word!", "café naïve", "e\u0301", "[CLS] x [SEP]", "", "mat <mask>  the"]


def bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(["<s>", "<|image|>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def word_level() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                                              show_progress=False))
    tok.add_special_tokens(["[CLS]", "[SEP]", AddedToken("<mask>", lstrip=True, special=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


OUT.mkdir(parents=True, exist_ok=True)
for name, tok, strings in [("bpe", bpe(), BPE_STRINGS), ("wordlevel", word_level(), WL_STRINGS)]:
    tok.save(str(OUT / f"{name}.json"), pretty=False)
    print(f"// {name}.json: vocab size {tok.get_vocab_size()}")
    for s in strings:
        with_special = tok.encode(s).ids
        without = tok.encode(s, add_special_tokens=False).ids
        decoded = json.dumps(tok.decode(without, skip_special_tokens=False))
        print(f"({json.dumps(s)}, {with_special}, {without}, {decoded}),")

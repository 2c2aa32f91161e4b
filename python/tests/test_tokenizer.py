"""loranas.Tokenizer against Hugging Face tokenizers: the real Llama-3 tokenizer (and variants of it
with a BOS template and with GPT-2's ByteLevel pre-tokenizer) and WordLevel tokenizers built with
tokenizers' Python API, on seeded strings (fixed samples of many scripts, code, emoji, whitespace
runs, digits, special tokens inside text, and random Unicode)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import loranas

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer as HFTokenizer  # noqa: E402
from tokenizers import models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402


SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|image|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|reserved_special_token_5|>"]

SAMPLES = [
    "", " ", "  ", "\n", "\n\n\n", "\r\n", " \r\n \t", "\t\t", "a", "Hello, world!", "Hello  world", "  leading",
    "trailing  ", "I'm here, you're there, it's fine; we'll see, they'd've", "DON'T SHOUT'S 'LL 'Ve",
    "The quick brown fox jumps over the lazy dog.", "1", "12", "123", "1234", "1234567890", "3.14159 2,718 -42 1e10",
    "Ünïcödé façade naïve café résumé",
    "Straße größer Übermaß", "Привет, как дела? Ёжик в тумане.",
    "Γειά σου Κόσμε· ἀρχή", "你好，世界。我爱自然语言处理！",
    "こんにちは世界、カタカナとひらがな。", "안녕하세요 세계",
    "مرحبا بالعالم ١٢٣", "שלום עולם", "नमस्ते दुनिया १२३",
    "สวัสดีชาวโลก", "Xin chào thế giới", "ሰላም ልዑል",
    "😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️",
    "e\u0301 vs \u00e9 and a\u030a\u0301", "zero\u200bwidth\u200djoiner\u2060",
    "nbsp\u00a0here\u2003em\u3000ideo", "line\u2028sep\u2029para\u0085nel", "tab\there\vvt\fff", "nul\x00byte",
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "<html><body class=\"x\">&amp;</body></html>", "SELECT * FROM t WHERE id = 'x';", "https://example.com/a?b=c&d=e#f",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "$ ls -la | grep '\\.py$' > out.txt 2>&1",
    "<|begin_of_text|>Hello", "a<|eot_id|>b", "<|image|><|image|>", "<|image|>\nDescribe this image.",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|image|", "<|image |>", "x <|image|> y",
    "<|reserved_special_token_5|>!", "   <|image|>   ", "\n<|eot_id|>\n", "<|begin_of_text|><|begin_of_text|>",
    "!!!???...,,,;;;", "----====____", "'''\"\"\"```", "a'b'c'd", "'s's's", "x'S", "word's", "ca'n't",
    "ǅungla ǈ ǋ ſs Kelvin K Å", "ÀÁÂ ŸŹ ĀāĂă",
    "ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "½ ⅓ ² ³ Ⅻ ⑧", "١٢٣٤٥ ۱۲۳ ߁߂",
    "        many spaces then text", "text\n\n\n\nafter newlines", "a \n b \r\n c", " \n \n ", "\t \t x",
]

POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") * 3 + list("0123456789") * 2
        + list(" " * 12) + ["\n", "\t", "\r\n", "\r", "  ", "\u00a0", "\u3000"]
        + list("'.,;:!?-_()[]{}<>/\\\"#$%&*+=@^`|~")
        + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"] + list("éèêëàâäçñøåæœßÉÀÇÑ")
        + list("абвгдежзийклмнопрстуфхцчшщъыьэюя")
        + list("αβγδεζηθικλμνξοπρστυφχψω")
        + list("中文字符日本語한국어")
        + list("ひらがなカタカナ") + ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🦀"]
        + list("١٢٣٤٥٦٧٨٩")
        + ["e\u0301", "\u0301", "\u200d"]
        + SPECIALS + ["<|", "|>", "<", "|"])


def random_unicode(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            c = rng.randrange(0x20, 0x3000)
        elif r < 0.8:
            c = rng.randrange(0x3000, 0x10000)
        else:
            c = rng.randrange(0x10000, 0x30000)
        if 0xD800 <= c < 0xE000:
            c = 0x20
        out.append(chr(c))
    return "".join(out)


def make_strings(seed: int, count: int) -> list[str]:
    """Seeded strings: the samples, samples glued together, pool pieces, random Unicode."""
    rng = random.Random(seed)
    strings = list(SAMPLES)
    while len(strings) < count:
        kind = rng.random()
        if kind < 0.2:
            strings.append(" ".join(rng.choice(SAMPLES) for _ in range(rng.randrange(1, 4))))
        elif kind < 0.7:
            strings.append("".join(rng.choice(POOL) for _ in range(rng.randrange(0, 40))))
        elif kind < 0.9:
            strings.append(random_unicode(rng, rng.randrange(1, 25)))
        else:
            ws = "".join(rng.choice([" ", "\n", "\t", "\r", "\u00a0", "  "]) for _ in range(rng.randrange(1, 12)))
            strings.append(ws.join(rng.choice(POOL) for _ in range(rng.randrange(1, 6))))
    return strings


def compare(ours: loranas.Tokenizer, hf: HFTokenizer, strings: list[str], add_special_tokens: bool = True) -> dict:
    """Ids, decoded text (both skip_special_tokens values) and round trips against HF; returns counts and the
    first mismatches."""
    hf_ids = [e.ids for e in hf.encode_batch(strings, add_special_tokens=add_special_tokens)]
    report = {"strings": len(strings), "id_mismatches": [], "decode_mismatches": [], "round_trips": 0}
    for s, expected in zip(strings, hf_ids):
        got = ours.encode(s, add_special_tokens=add_special_tokens)
        if got != expected:
            report["id_mismatches"].append((s, got, expected))
            continue
        for skip in (False, True):
            hf_text = hf.decode(expected, skip_special_tokens=skip)
            text = ours.decode(got, skip_special_tokens=skip)
            if text != hf_text:
                report["decode_mismatches"].append((s, skip, text, hf_text))
        if hf.decode(expected, skip_special_tokens=False) == s:
            assert ours.decode(got) == s
            report["round_trips"] += 1
    return report


def assert_same(report: dict) -> None:
    ids, dec = report["id_mismatches"], report["decode_mismatches"]
    print(f"{report['strings']} strings, {len(ids)} id mismatches, {len(dec)} decode mismatches, "
          f"{report['round_trips']} exact round trips")
    assert not ids, f"{len(ids)} of {report['strings']} strings differ, first ones: {ids[:5]}"
    assert not dec, f"{len(dec)} decodes differ, first ones: {dec[:5]}"


# ---- the real Llama-3 tokenizer -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama3_dir(llama3_tokenizer_dir) -> Path:
    return llama3_tokenizer_dir


def variant(llama3_dir: Path, name: str, change) -> Path:
    """A copy of the Llama-3 tokenizer.json with `change` applied to its JSON."""
    path = llama3_dir / f"{name}.json"
    if not path.exists():
        data = json.loads((llama3_dir / "tokenizer.json").read_text())
        change(data)
        path.write_text(json.dumps(data))
    return path


def test_llama3_vocabulary(llama3_dir):
    with loranas.Tokenizer.from_file(llama3_dir / "tokenizer.json") as tok:
        assert tok.vocab_size == 128257
        assert tok.token_to_id("<|image|>") == 128256
        assert tok.token_to_id("<|begin_of_text|>") == 128000
        assert tok.token_to_id("<|eot_id|>") == 128009
        assert tok.token_to_id("Hello") == 9906
        assert tok.token_to_id("no such token") is None
        # The published ids of a chat header (Llama-3's model card tokenization).
        assert tok.encode("<|start_header_id|>user<|end_header_id|>\n\n") == [128006, 882, 128007, 271]


def test_llama3_matches_hf(llama3_dir):
    path = llama3_dir / "tokenizer.json"
    ours, hf = loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    strings = make_strings(seed=1, count=20_000)
    assert_same(compare(ours, hf, strings, add_special_tokens=True))
    # Long words and runs (a quadratic merge loop took minutes on 200,000 letters; the heap takes milliseconds).
    rng = random.Random(7)
    long = ["a" * 50_000, "ab" * 20_000, " " * 10_000, "7" * 10_000, "\n" * 5000 + "x",
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(30_000)),
            "".join(rng.choice(POOL) for _ in range(20_000))]
    assert_same(compare(ours, hf, long))
    # This file's post-processor is ByteLevel (no BOS): both ways give the same ids.
    assert_same(compare(ours, hf, strings[:2000], add_special_tokens=False))


def test_llama3_contractions_and_case_folding(llama3_dir):
    """The pattern's (?i:'s|'t|...) against characters whose case folding is unusual (ſ, K, İ, ẞ, ﬅ), and an
    apostrophe followed by random characters: ICU's case-insensitive matching must agree with Oniguruma's."""
    path = llama3_dir / "tokenizer.json"
    ours, hf = loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    strings = ["'\u017f", "'\u212a", "'\u0130", "'\u00df", "'\ufb05", "x'\u017fx", "'LL'll'lL", "'\u0345", "\u0130'D",
               "\u1e9e'S", "'\u1e9e", "'\u0131", "'\u03c2", "'M'\u041c"]
    rng = random.Random(11)
    chars = [chr(c) for c in range(0x20, 0x3400) if not 0xD800 <= c < 0xE000]
    strings += ["'" + "".join(rng.choice(chars) for _ in range(rng.randrange(1, 4))) for _ in range(5000)]
    assert_same(compare(ours, hf, strings))


def test_llama3_with_bos_template(llama3_dir):
    """The BOS template of the published Llama-3.2 files, with add_special_tokens both ways."""
    def change(d):
        bos = {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}
        d["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": bos},
        }
    path = variant(llama3_dir, "bos", change)
    ours, hf = loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    strings = make_strings(seed=2, count=3000)
    assert_same(compare(ours, hf, strings, add_special_tokens=True))
    assert_same(compare(ours, hf, strings, add_special_tokens=False))
    assert ours.encode("Hi") == [128000, 13347]
    assert ours.encode("Hi", add_special_tokens=False) == [13347]


def test_gpt2_byte_level_pre_tokenizer(llama3_dir):
    """The Llama-3 vocabulary behind GPT-2's ByteLevel pre-tokenizer (its regex and the prefix space)."""
    def change(d):
        d["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    path = variant(llama3_dir, "gpt2", change)
    ours, hf = loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    assert_same(compare(ours, hf, make_strings(seed=3, count=3000)))


def test_added_token_flags_and_nfc(llama3_dir):
    """Added tokens with lstrip, rstrip, single_word and normalized (matched after NFC) in front of the byte-level
    BPE, where the spaces they strip would otherwise be tokens."""
    def change(d):
        d["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
        flags = {"special": False, "lstrip": False, "rstrip": False, "single_word": False, "normalized": False}
        d["added_tokens"] += [
            dict(flags, id=128257, content="<mask>", lstrip=True, rstrip=True, special=True),
            dict(flags, id=128258, content="new york", single_word=True, normalized=True),
            dict(flags, id=128259, content="\u00e9!", normalized=True),
            dict(flags, id=128260, content="[L]", lstrip=True),
            dict(flags, id=128261, content="[R]", rstrip=True),
        ]
    path = variant(llama3_dir, "flags", change)
    ours, hf = loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    rng = random.Random(6)
    pieces = [" <mask> ", "<mask>", "  <mask>", "new york", " new york ", "new yorker", "e\u0301!", "\u00e9!", " [L] ",
              "\t[L]", "[R]  x", "[R]\n\n", "  ",
              "_new york", "\u2467new york", "new york\u200d", "new york\u0301", "\u00bdnew york_"]
    strings = [s + rng.choice(pieces) + rng.choice(SAMPLES) + rng.choice(pieces)
               for s in make_strings(seed=6, count=3000)]
    assert_same(compare(ours, hf, strings))
    assert ours.vocab_size == 128262


# ---- WordLevel ------------------------------------------------------------------------------------------------


def word_level(tmp_path: Path, pre_tokenizer, name: str, corpus: list[str],
               normalizer=None) -> tuple[loranas.Tokenizer, HFTokenizer]:
    hf = HFTokenizer(models.WordLevel(unk_token="[UNK]"))
    hf.normalizer = normalizer or normalizers.Sequence([normalizers.NFC()])
    hf.pre_tokenizer = pre_tokenizer
    trainer = trainers.WordLevelTrainer(vocab_size=3000, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    hf.train_from_iterator(corpus, trainer)
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", hf.token_to_id("[CLS]")), ("[SEP]", hf.token_to_id("[SEP]"))])
    hf.add_special_tokens(["[CLS]", "[SEP]", AddedToken("<mask>", lstrip=True, rstrip=True, special=True)])
    hf.add_tokens([AddedToken("new york", single_word=True, normalized=True), AddedToken("ß!", normalized=False)])
    path = tmp_path / f"{name}.json"
    hf.save(str(path))
    return loranas.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))


def word_level_strings(seed: int, count: int) -> list[str]:
    extra = ["I live in new york.", "new yorker", "a new york b", "x <mask> y", "x  <mask>  y", "<mask>",
             "[CLS] hi [SEP]", "ß! ß!ß!", "Straße!", "e\u0301"]
    rng = random.Random(seed)
    strings = make_strings(seed, count - len(extra))
    return extra + [s + rng.choice(["", " <mask> ", " new york", "ß!"]) for s in strings]


def test_word_level_matches_hf(tmp_path):
    strings = word_level_strings(seed=4, count=20_000)
    ours, hf = word_level(tmp_path, pre_tokenizers.Whitespace(), "whitespace", strings[::3])
    assert hf.get_vocab_size() == ours.vocab_size
    assert_same(compare(ours, hf, strings, add_special_tokens=True))
    assert_same(compare(ours, hf, strings[:2000], add_special_tokens=False))


@pytest.mark.parametrize("behavior", ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"])
@pytest.mark.parametrize("invert", [False, True])
def test_split_behaviors(tmp_path, behavior, invert):
    """Every Split behavior, inverted or not, on a WordLevel tokenizer (WhitespaceSplit after it)."""
    split = pre_tokenizers.Split(Regex(r"\d|[,.!?]+|\s"), behavior=behavior, invert=invert)
    pre = pre_tokenizers.Sequence([split, pre_tokenizers.WhitespaceSplit()])
    strings = word_level_strings(seed=5, count=1000)
    ours, hf = word_level(tmp_path, pre, f"split-{behavior}-{invert}", strings)
    assert_same(compare(ours, hf, strings))


# ---- the C ABI's protocols ------------------------------------------------------------------------------------


def test_errors_and_buffers(tmp_path, llama3_dir):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"type": "Unigram", "vocab": []}}))
    with pytest.raises(loranas.UnsupportedError, match="Unigram"):
        loranas.Tokenizer.from_file(bad)
    bad.write_text("{\"model\": ")
    with pytest.raises(loranas.FormatError):
        loranas.Tokenizer.from_file(bad)
    with pytest.raises(loranas.NotFoundError, match="no such file"):
        loranas.Tokenizer.from_file(tmp_path / "missing.json")
    with pytest.raises(loranas.EngineIOError, match="not a regular file"):
        loranas.Tokenizer.from_file(tmp_path)
    import ctypes
    from loranas import _bindings as B
    tok = loranas.Tokenizer.from_file(llama3_dir / "tokenizer.json")
    text = b"a\x00b <|image|>"
    count = ctypes.c_int64()
    with tok._use() as h:
        assert B.loranas_tokenizer_encode(h, text, len(text), 1, None, 0, ctypes.byref(count)) == B.LORANAS_OK
        assert count.value == len(tok.encode("a\x00b <|image|>"))
        small = (ctypes.c_int64 * 1)()
        status = B.loranas_tokenizer_encode(h, text, len(text), 1, small, 1, ctypes.byref(count))
        assert status == B.LORANAS_ERR_BUFFER_TOO_SMALL
        assert b"ids holds 1 elements" in B.loranas_last_error()
        invalid = b"\xff\xfe"
        status = B.loranas_tokenizer_encode(h, invalid, 2, 1, None, 0, ctypes.byref(count))
        assert status == B.LORANAS_ERR_INVALID_ARGUMENT
    assert tok.decode(tok.encode("a\x00b")) == "a\x00b"
    assert tok.decode([]) == ""
    for bad_id in (-1, 2**32, 2**70):
        with pytest.raises(loranas.InvalidArgumentError):
            tok.decode([bad_id])
    assert tok.decode([2**32 - 1, 9906]) == "Hello"  # an id no token has is skipped, as HF does
    with pytest.raises(loranas.InvalidArgumentError):
        tok.token_to_id("a\x00b")
    tok.close()
    with pytest.raises(ValueError, match="closed"):
        tok.encode("x")


@pytest.mark.parametrize("behavior", ["isolated", "merged_with_next", "contiguous"])
def test_split_string_pattern(tmp_path, behavior):
    """Split with a literal pattern ({"String": ...}; "." is not a regex here), NFC as the whole normalizer."""
    split = pre_tokenizers.Split(". ", behavior=behavior)
    assert '"String"' in split.__getstate__().decode() if hasattr(split, "__getstate__") else True
    strings = word_level_strings(seed=10, count=1000) + ["a. b. c", "a.b. .", ". . .", "x . y"]
    ours, hf = word_level(tmp_path, split, f"string-{behavior}", strings, normalizer=normalizers.NFC())
    saved = json.loads((tmp_path / f"string-{behavior}.json").read_text())
    assert saved["pre_tokenizer"]["pattern"] == {"String": ". "} and saved["normalizer"]["type"] == "NFC"
    assert_same(compare(ours, hf, strings))

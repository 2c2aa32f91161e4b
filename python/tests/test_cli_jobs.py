"""The CLI's jobs on real data (issue 9): pack → search → finetune (warm, from search.json in another process) →
eval → export on a small JSONL with images; PEFT and transformers reload what the CLI writes with the engine's
logits; the CLI and Python agree on a search and a warm fine-tune; help texts are snapshots; bad input is one
line and a non-zero exit; Ctrl-C checkpoints, exits 130, and the same command resumes to the same result.

Help snapshots live in fixtures/cli_help/<subcommand>.txt. After changing an option or a help string, regenerate
them with
    LORANAS_REGEN_HELP=1 pytest python/tests/test_cli_jobs.py -k help
and review the diff.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

import loranas  # noqa: E402
from test_cauldron_dataset import model_dir, records, write_jsonl  # noqa: E402,F401  (pytest fixtures)
from test_cli import cli  # noqa: E402

HELP_DIR = Path(__file__).parent / "fixtures" / "cli_help"
SUBCOMMANDS = ["search", "finetune", "eval", "generate", "export", "compare"]
# One engine thread everywhere: runs are bit-reproducible for a given thread count (see test_interrupt.py).
SEARCH = ["--space", "2,4,8", "--epochs", "2", "--batch-size", "2", "--lr", "3e-3", "--alpha-lr", "3e-2",
          "--seed", "5", "--threads", "1"]
FINETUNE = ["--epochs", "1", "--batch-size", "2", "--lr", "3e-3", "--seed", "5", "--threads", "1"]


def run(*args, timeout=900, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="80")
    return subprocess.run([str(cli()), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, **kw)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def data(model_dir, tmp_path_factory) -> dict:
    """train.pack (packed by the CLI from a JSONL with images) and val.jsonl."""
    d = tmp_path_factory.mktemp("data")
    write_jsonl(d / "train.jsonl", records(d, 12, seed=3))
    val_dir = d / "v"
    val_dir.mkdir()
    write_jsonl(val_dir / "val.jsonl", records(val_dir, 6, seed=4))
    ok(run("pack", model_dir, d / "train.jsonl", "-o", d / "train.pack"))
    return {"train": d / "train.pack", "val": val_dir / "val.jsonl", "dir": d}


@pytest.fixture(scope="module")
def pipeline(model_dir, data, tmp_path_factory) -> dict:
    """search → finetune --init warm (a separate process, from search.json) → eval → export --merge."""
    out = tmp_path_factory.mktemp("jobs")
    tv = ["--train", data["train"], "--val", data["val"]]
    search = ok(run("search", model_dir, *tv, *SEARCH, "-o", out / "search.json", "--json"))
    tune = ok(run("finetune", model_dir, *tv, *FINETUNE, "--ranks", out / "search.json", "--init", "warm",
                  "-o", out / "adapter", "--json"))
    ev = ok(run("eval", model_dir, "--data", data["val"], "--adapter", out / "adapter", "--json", "--threads", "1"))
    ok(run("export", model_dir, "--adapter", out / "adapter", "--merge", "-o", out / "merged"))
    return {"dir": out, "search": json.loads(search.stdout), "finetune": json.loads(tune.stdout),
            "eval": json.loads(ev.stdout), "model_dir": Path(model_dir)}


def test_pipeline_writes_every_output(pipeline):
    out = pipeline["dir"]
    assert json.loads((out / "search.json").read_text()) == pipeline["search"]
    assert (out / "search.supernet.safetensors").is_file()
    assert pipeline["finetune"]["ranks"] == pipeline["search"]["ranks"]
    assert {p.name for p in (out / "adapter").iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    # The weights, and the model directory's processor files copied beside them: a complete model directory.
    processor_files = {"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.jinja",
                       "generation_config.json"}
    assert {p.name for p in (out / "merged").iterdir()} == {"config.json", "model.safetensors"} | processor_files
    for name in processor_files:
        assert (out / "merged" / name).read_bytes() == (pipeline["model_dir"] / name).read_bytes()
    ev = pipeline["eval"]
    # eval of the saved adapter = the fine-tune's own last evaluation (same data, batch size 8 both).
    assert ev["perplexity"] == pytest.approx(pipeline["finetune"]["evaluations"][-1]["perplexity"], rel=1e-6)
    assert ev["mean_batch_perplexity"] == pytest.approx(np.exp(ev["mean_batch_loss"]))


def one_sample(model_dir, path) -> dict:
    """The first sample with images, with a batch axis."""
    ds = loranas.Dataset.from_cauldron(path, model=model_dir)
    sample = next(ds[i] for i in range(len(ds)) if "pixel_values" in ds[i])
    return {k: v[None] for k, v in sample.items() if k != "labels"}


def hf_logits(model, sample) -> np.ndarray:
    import torch
    args = {k: torch.from_numpy(np.asarray(v)) for k, v in sample.items()}
    args["pixel_values"] = args["pixel_values"].float()
    with torch.no_grad():
        return model(**args).logits.numpy()


def rel(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def test_peft_and_transformers_reload_cli_outputs(pipeline, model_dir, data):
    """PeftModel.from_pretrained reloads the adapter, and transformers the merged export, with the engine's
    logits for the base model plus the adapter."""
    from peft import PeftModel
    from transformers import MllamaForConditionalGeneration

    sample = one_sample(model_dir, data["val"])
    engine = loranas.Model(model_dir, adapter=pipeline["dir"] / "adapter").forward(**sample).logits
    base = MllamaForConditionalGeneration.from_pretrained(model_dir).eval()
    peft = PeftModel.from_pretrained(base, pipeline["dir"] / "adapter").eval()
    assert rel(hf_logits(peft, sample), engine) < 1e-5
    merged = MllamaForConditionalGeneration.from_pretrained(pipeline["dir"] / "merged").eval()
    assert rel(hf_logits(merged, sample), engine) < 1e-5


def test_cli_equals_python(pipeline, model_dir, data):
    """loranas.search with the CLI's options and seed gives the same ranks and final α; a warm fine-tune on the
    model in memory gives the CLI's fine-tune (which re-attached the supernet from its file) exactly."""
    loranas.set_num_threads(1)
    model = loranas.load_model(model_dir)
    train = loranas.Dataset.load(data["train"])
    val = loranas.Dataset.from_cauldron(data["val"], model=model_dir)
    found = loranas.search(model, train, val, space=(2, 4, 8), epochs=2, batch_size=2, lr=3e-3, alpha_lr=3e-2,
                           seed=5)
    cli_search = loranas.SearchResult.from_json(json.dumps(pipeline["search"]))
    assert found.ranks == cli_search.ranks
    for m in found.ranks:
        np.testing.assert_array_equal(found.final_weights[m], cli_search.final_weights[m])
        np.testing.assert_array_equal(found.alpha_history[m], cli_search.alpha_history[m])
    tuned = loranas.finetune(model, train, val, ranks=found, init="warm", epochs=1, batch_size=2, lr=3e-3, seed=5)
    assert tuned.train_losses == pipeline["finetune"]["train_losses"]
    assert tuned.eval_perplexity == pipeline["finetune"]["eval_perplexity"]


def test_cli_eval_equals_python_evaluate(pipeline, model_dir, data):
    """`loranas eval --json` and loranas.evaluate on the same adapter and data agree on every number and answer."""
    loranas.set_num_threads(1)
    with loranas.Model(model_dir) as model:
        result = loranas.evaluate(model, loranas.Dataset.from_cauldron(data["val"], model=model_dir),
                                  adapter=pipeline["dir"] / "adapter", answers=True)
    ev = pipeline["eval"]
    assert result.perplexity == ev["perplexity"] and result.n_tokens == ev["tokens"]
    assert result.accuracy == ev["accuracy"]
    assert [a["generated"] for a in result.answers] == [a["generated"] for a in ev["answers"]]
    assert len(ev["answers"]) == result.n_samples


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_snapshots(sub):
    text = ok(run(sub, "--help")).stdout
    path = HELP_DIR / f"{sub}.txt"
    if os.environ.get("LORANAS_REGEN_HELP"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"help of `{sub}` changed; see the module docstring to regenerate"


def one_error(r: subprocess.CompletedProcess, code: int, message: str):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and message in lines[0], r.stderr
    # Usage errors add swift-argument-parser's usage lines after the one error line.
    assert "Fatal error" not in r.stderr and sum(ln.startswith("Error") for ln in lines) == 1, r.stderr
    assert code == 64 or len(lines) == 1, r.stderr


@pytest.mark.parametrize("args, code, message", [
    (["--space", "8,4"], 64, "increasing order"),
    (["--space", "4,x"], 64, '"x" is not a positive rank'),
    (["--budget", "2.0"], 64, "--budget must be a fraction in (0, 1]"),
    (["--budget", "2"], 1, "budget 2 is outside what the space can reach"),
    (["--epochs", "0"], 64, "--epochs must be in 1..."),
    (["--threads", "500"], 64, "--threads must be in 1...64"),
    (["--targets", "nope"], 64, "nope"),
])
def test_bad_search_options(model_dir, data, tmp_path, args, code, message):
    r = run("search", model_dir, "--train", data["train"], "--val", data["val"], "--threads", "1", *args,
            "-o", tmp_path / "s.json")
    one_error(r, code, message)
    assert not (tmp_path / "s.json").exists()


def test_bad_files_and_data(model_dir, data, tmp_path):
    tv = ["--val", data["val"], "-o", tmp_path / "s.json"]
    one_error(run("search", model_dir, "--train", tmp_path / "missing.jsonl", *tv), 1, "missing.jsonl")
    one_error(run("search", model_dir, "--train", tmp_path / "data.csv", *tv), 64, ".jsonl")
    one_error(run("search", tmp_path / "nomodel", "--train", data["train"], *tv), 1, "nomodel")
    recs = records(tmp_path, 3, seed=9)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    recs[2]["images"] = ["broken.png"]
    bad = write_jsonl(tmp_path / "bad.jsonl", recs)
    one_error(run("search", model_dir, "--train", bad, *tv), 1, "bad.jsonl:3")
    one_error(run("eval", model_dir, "--data", data["val"], "--adapter", tmp_path / "noadapter"), 1, "noadapter")
    one_error(run("finetune", model_dir, "--train", data["train"], "--val", data["val"], "--ranks", "8",
                  "--init", "warm", "-o", tmp_path / "a"), 64, "--init warm needs --ranks search.json")
    one_error(run("export", model_dir, "--adapter", tmp_path, "-o", tmp_path / "m"), 64, "--merge")


def test_warm_finetune_without_supernet_file_is_a_clear_error(pipeline, model_dir, data, tmp_path):
    lonely = tmp_path / "search.json"
    lonely.write_text((pipeline["dir"] / "search.json").read_text())
    r = run("finetune", model_dir, "--train", data["train"], "--val", data["val"], "--ranks", lonely,
            "--init", "warm", "-o", tmp_path / "a")
    one_error(r, 1, "search.supernet.safetensors")


def test_sigint_checkpoints_and_the_same_command_resumes(model_dir, data, tmp_path):
    """Ctrl-C during `loranas search --checkpoint-dir D`: exit 130, a checkpoint in D, a resume hint; rerunning
    the same command finishes with the result of an uninterrupted run."""
    args = ["search", model_dir, "--train", data["train"], "--val", data["val"], "--space", "2,4,8",
            "--epochs", "4", "--batch-size", "1", "--seed", "2", "--threads", "1", "--checkpoint-every", "1000"]
    ckpt = tmp_path / "ckpt"
    cmd = [str(cli()), *map(str, args), "--checkpoint-dir", str(ckpt), "-o", str(tmp_path / "a.json")]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()  # the first progress line (step 10 of 48): the run is in its loop
        assert "search step 10/48" in line, line
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=600)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "run the same command again to resume" in err and err.count("Error") == 0, err
    assert (ckpt / "state.safetensors").is_file() and not (tmp_path / "a.json").exists()
    resumed = ok(subprocess.run(cmd, capture_output=True, text=True, timeout=900))
    assert "search step 10/48" not in resumed.stderr, resumed.stderr  # it went on from the checkpoint
    ok(run(*args, "-o", tmp_path / "b.json"))
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for key in ("ranks", "final_weights", "alpha_history", "train_losses", "validation_losses", "steps"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("kind, extra", [("search", []), ("finetune", ["--ranks", "4"])])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_sigint_stops_both_jobs_with_130(model_dir, data, tmp_path, kind, extra, checkpoint):
    """Both jobs stop on Ctrl-C with exit 130 and write no output; the message says whether the run was saved."""
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")] if checkpoint else []
    cmd = [str(cli()), kind, str(model_dir), "--train", str(data["train"]), "--val", str(data["val"]), *extra,
           "--epochs", "4", "--batch-size", "1", "--threads", "1", *ckpt, "-o", str(tmp_path / "out")]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert f"{kind} step" in p.stderr.readline()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=600)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert ("run the same command again to resume" if checkpoint else "nothing was saved") in err, err
    assert (tmp_path / "ckpt" / "state.safetensors").is_file() == checkpoint
    assert not (tmp_path / "out").exists()


def test_compare_on_data_files(model_dir, data):
    r = ok(run("compare", model_dir, "--train", data["train"], "--val", data["val"], "--space", "2,4,8",
               "--search-epochs", "1", "--epochs", "1", "--batch-size", "4", "--random-runs", "1", "--threads", "1"))
    for column in ("LORA PARAMS", "SHARE", "EVAL PPL", "ACCURACY", "s/EPOCH"):
        assert column in r.stdout
    for row in ("searched (warm)", "uniform r=8", "random #1"):
        assert row in r.stdout
    table = json.loads(ok(run("compare", model_dir, "--train", data["train"], "--val", data["val"], "--space", "2,4,8",
                              "--search-epochs", "1", "--epochs", "1", "--batch-size", "4", "--random-runs", "0",
                              "--threads", "1", "--json")).stdout)
    val = loranas.Dataset.from_cauldron(data["val"], model=model_dir)
    for run_ in table["runs"]:
        assert 0 <= run_["accuracy"] <= 1
        # the accuracy is a count of exact answers over the validation samples
        assert round(run_["accuracy"] * len(val)) == pytest.approx(run_["accuracy"] * len(val))


def test_progress_on_a_terminal_is_one_redrawn_line(model_dir, data, tmp_path):
    """With stderr on a terminal, each step redraws one line (carriage return, erase line); the epoch ends keep
    their line."""
    import pty
    master, slave = pty.openpty()
    cmd = [str(cli()), "search", str(model_dir), "--train", str(data["train"]), "--val", str(data["val"]),
           "--space", "2,4", "--epochs", "2", "--batch-size", "4", "--threads", "1", "-o", str(tmp_path / "s.json")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert p.wait(timeout=600) == 0
    text = b"".join(chunks).decode()
    assert text.count("\r\x1b[K") == 6 + 2, text  # 3 steps per epoch, 2 epochs, and 2 epoch lines
    assert "search step 3/6" in text and "steps/s" in text and "left" in text
    assert text.count("\n") == 2 or text.count("\r\n") == 2, text


def test_cli_generate_equals_python(pipeline, model_dir, data):
    """`loranas generate` (images read as paths) answers as Model.generate(images=paths, prompt=...), which
    test_generate.py checks against transformers' processor, chat template and generate()."""
    image = next(p for p in sorted(data["val"].parent.iterdir()) if p.suffix in (".png", ".jpg"))
    args = ["--image", image, "--prompt", "What is shown?", "--max-new-tokens", "6"]
    cli_answer = json.loads(ok(run("generate", model_dir, *args, "--adapter", pipeline["dir"] / "adapter",
                                   "--json")).stdout)["answer"]
    with loranas.Model(model_dir, adapter=pipeline["dir"] / "adapter") as model:
        assert cli_answer == model.generate(images=[str(image)], prompt="What is shown?", max_new_tokens=6)
    one_error(run("generate", model_dir, "--image", data["dir"] / "missing.png", "--prompt", "x"), 1, "missing.png")
    one_error(run("generate", model_dir, "--prompt", "x", "--top-p", "0"), 64, "--top-p")


def test_tasks_make_runs_the_python_generators(tmp_path):
    """`loranas tasks make` writes what loranas.tasks.make writes, byte for byte."""
    import sys

    from loranas import tasks

    env = dict(os.environ, LORANAS_PYTHON=sys.executable)
    args = ["--tasks", "spatial,digits", "--n-train", "3", "--n-val", "1", "--n-eval", "2", "--seed", "4"]
    r = subprocess.run([str(cli()), "tasks", "make", str(tmp_path / "cli"), *args], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    tasks.make(tmp_path / "py", names=["spatial", "digits"], n_train=3, n_val=1, n_eval=2, seed=4)
    files = sorted(p.relative_to(tmp_path / "py") for p in (tmp_path / "py").rglob("*") if p.is_file())
    assert len(files) == 2 * (3 + 1 + 2 + 4)  # images, three JSONL files and meta.json per task
    for f in files:
        assert (tmp_path / "cli" / f).read_bytes() == (tmp_path / "py" / f).read_bytes(), f


def test_tasks_make_without_the_python_package_is_one_error_line(tmp_path):
    env = dict(os.environ, LORANAS_PYTHON="false")
    r = subprocess.run([str(cli()), "tasks", "make", str(tmp_path)], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "cannot import loranas.tasks" in r.stderr
    assert not any(tmp_path.iterdir())

"""Writes, executes and exports the quickstart notebook: notebooks_export/quickstart.ipynb (with its outputs and
figures) and notebooks_export/quickstart.html.

    python tools/make_notebook.py [--out notebooks_export] [--check]

The cells are below (the notebook's source of truth). They run with the kernel of this Python (nbclient), so
loranas, Pillow, scikit-learn and matplotlib must import here. ``--check`` executes into a temporary directory
and leaves notebooks_export alone (what CI runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CELLS = [
    ("markdown", """# loranas quickstart: search a LoRA rank per layer, fine-tune, judge by the answers

This notebook runs *LangVision-LoRA-NAS* on the demo base that ships with loranas (a 4M-parameter Mllama
pretrained on image captions) and one of the built-in tasks: make the task, look at it, search ranks with the
weight-sharing supernet, fine-tune the searched ranks against uniform rank 64 and random ranks at the same
budget, and compare their eval perplexity and exact-match answer accuracy."""),
    ("code", """import time
import matplotlib.pyplot as plt
from PIL import Image
import loranas
from loranas import demo, tasks

loranas.set_num_threads(2)
model = loranas.load_model(demo.base_path())
print(f"{model.config['total_parameters']:,} parameters; tasks: {', '.join(tasks.NAMES)}")"""),
    ("markdown", "## A task: chart reading (ChartQA-like), as Cauldron JSONL with PNG images"),
    ("code", """files = tasks.make("quickstart-tasks", names=["charts"], n_train=96, n_val=24, n_eval=32)["charts"]
import json
records = [json.loads(line) for line in files["eval"].read_text().splitlines()]
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, r in zip(axes, records):
    ax.imshow(Image.open(files["eval"].parent / r["images"][0]))
    ax.set_title(f"{r['texts'][0]['user']}\\n→ {r['texts'][0]['assistant']}", fontsize=8)
    ax.axis("off")
plt.show()"""),
    ("code", """train, val, test = (loranas.Dataset.from_cauldron(files[split], model=model)
                    for split in ("train", "val", "eval"))
base = loranas.evaluate(model, test, answers=True)
print(f"base: eval perplexity {base.perplexity:.2f}, answer accuracy {base.accuracy:.0%}")
for a in base.answers[:4]:
    print(f"  expected {a['reference_text']!r:12} base model says {a['generated_text']!r}")"""),
    ("markdown", """## Search: one supernet, rank space {4, 8, 16, 32, 64}, at 40% of uniform-64's LoRA parameters

Each step trains A/B on a train batch with α frozen, then α on a validation batch with A/B frozen. Each
module's rank is then the most probable assignment within the budget."""),
    ("code", """t0 = time.time()
found = loranas.search(model, train, val, targets="all", space=(4, 8, 16, 32, 64), budget=0.4,
                       epochs=1, batch_size=8, lr=2e-3, alpha_lr=5e-2, lora_alpha=128)
print(f"searched in {time.time() - t0:.0f} s: {found.lora_parameters:,} LoRA parameters "
      f"({found.lora_parameters / found.uniform_max_parameters:.0%} of uniform 64)")
loranas.plot_ranks(found, title="charts: searched rank per layer and module")
plt.show()"""),
    ("code", """loranas.plot_alpha(found)
plt.show()"""),
    ("markdown", "## Fine-tune: searched ranks vs uniform 64 vs random ranks at the same budget"),
    ("code", """rows = {}
controls = {"searched": found, "uniform-64": 64,
            "random": {"random": found.lora_parameters, "space": [4, 8, 16, 32, 64], "seed": 0}}
for name, ranks in controls.items():
    tuned = loranas.finetune(model, train, val, ranks=ranks, targets="all", epochs=2, batch_size=8, lr=2e-3,
                             lora_alpha=128, progress=True)
    result = loranas.evaluate(model, test)
    rows[name] = (result.perplexity, result.accuracy, tuned.lora_parameters)
    if name == "searched":
        searched_adapter = tuned
        searched_adapter.save_peft("quickstart-adapter")
print(f"{'adapter':12} {'eval ppl':>9} {'accuracy':>9} {'LoRA params':>12}")
print(f"{'base':12} {base.perplexity:9.3f} {base.accuracy:9.0%} {'-':>12}")
for name, (ppl, acc, n) in rows.items():
    print(f"{name:12} {ppl:9.3f} {acc:9.0%} {n:12,}")
loranas.plot_losses(searched_adapter)
plt.show()"""),
    ("markdown", "## Answers of the searched adapter on eval images"),
    ("code", """model.load_adapter("quickstart-adapter")
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, r in zip(axes, records[4:8]):
    image = Image.open(files["eval"].parent / r["images"][0])
    answer = model.generate(images=[image], prompt=r["texts"][0]["user"], max_new_tokens=8)
    ax.imshow(image)
    ax.set_title(f"{r['texts'][0]['user']}\\nmodel: {answer!r} (truth {r['texts'][0]['assistant']!r})", fontsize=8)
    ax.axis("off")
plt.show()"""),
    ("markdown", """The whole experiment, on every task and the paper's three adapter sets, is one command:
`python -m loranas demo` (see the README)."""),
]


def notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                for kind, src in CELLS]
    return nb


def execute(nb, cwd: Path):
    from nbclient import NotebookClient

    # coalesce_streams: a text progress bar arrives as one stream output per redraw; keep its last state.
    NotebookClient(nb, timeout=900, kernel_name="python3", coalesce_streams=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def main(argv=None) -> int:
    import nbformat
    from loranas._files import atomic_write_text
    from nbconvert import HTMLExporter

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "notebooks_export")
    p.add_argument("--check", action="store_true", help="execute in a temporary directory, write nothing")
    args = p.parse_args(argv)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as work:
        nb = execute(notebook(), Path(work))
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    bars = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "finetune" in o.get("text", "") or "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
    print(f"executed in {time.time() - t0:.0f} s, {images} figures, {bars} cells with progress bars")
    if args.check:
        return 0 if images >= 5 and bars >= 1 else 1
    html, _ = HTMLExporter().from_notebook_node(nb)
    atomic_write_text(args.out / "quickstart.ipynb", nbformat.writes(nb) + "\n")
    atomic_write_text(args.out / "quickstart.html", html)
    print(f"wrote {args.out / 'quickstart.ipynb'} and {args.out / 'quickstart.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

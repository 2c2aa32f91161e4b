import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import loranas

REPO = Path(__file__).resolve().parents[2]
LLAMA3_BUILDER = Path(os.environ.get("LORANAS_LLAMA3_BUILDER", REPO / "tools" / "build_llama3_tokenizer.py"))


def pytest_configure(config):
    # A shell that starts pytest in the background (`cmd &`) leaves SIGINT ignored; the Ctrl-C tests need
    # Python's own handler, which an interactive or CI run has (loranas leaves an ignored SIGINT alone).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    return [f"loranas {loranas.__version__} from {loranas.__file__}",
            f"libloranas {loranas.version()} (ABI {loranas.abi_version()}) from {loranas.library_path()}"]


@pytest.fixture(scope="session")
def llama3_tokenizer_dir(tmp_path_factory) -> Path:
    """A directory holding the real Llama-3 tokenizer.json (tools/build_llama3_tokenizer.py), built once."""
    if importlib.util.find_spec("quicktok") is None or importlib.util.find_spec("tiktoken") is None:
        pytest.skip("quicktok-v1 and tiktoken are not installed (pip install quicktok-v1 tiktoken): "
                    "they hold the Llama-3 ranks the tokenizer.json is built from")
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed: its TikTokenConverter builds the Llama-3 tokenizer.json")
    if not LLAMA3_BUILDER.is_file():
        pytest.skip(f"{LLAMA3_BUILDER} not found (set LORANAS_LLAMA3_BUILDER)")
    out = tmp_path_factory.mktemp("llama3")
    subprocess.run([sys.executable, str(LLAMA3_BUILDER), str(out)], check=True, capture_output=True)
    return out

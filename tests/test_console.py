"""What a user sees on the console during ``python train.py``: each message once, no third-party adverts or
warnings they cannot act on, and a model summary with real FLOPs."""

import re
from collections import Counter

from tests.conftest import TWO_BATCHES, run_cli

HYDRA_PREFIX = re.compile(r"^\[[^\]]+\]\[[^\]]+\]\[[A-Z]+\] - ")  # [time][logger][LEVEL] - message


def messages(output: str) -> list[str]:
    """Console lines without the logging prefix, tables' borders and blank lines."""
    lines = (HYDRA_PREFIX.sub("", line.removeprefix("INFO: ")).strip() for line in output.splitlines())
    return [line for line in lines if any(char.isalnum() for char in line)]


def test_short_training_prints_each_message_once(cifar_fixture, tmp_path):
    result = run_cli(
        ["train.py", *cifar_fixture, *TWO_BATCHES, f"hydra.run.dir={tmp_path}/run"],
        env={"PYTHONWARNINGS": ""},  # as a user runs it: Python's default warning filters
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    lines = messages(output)
    assert any("Trainer.fit` stopped" in m for m in lines)  # Lightning's own messages do reach the console
    repeated = {line: n for line, n in Counter(lines).items() if n > 1}
    assert not repeated, repeated
    assert "Tip:" not in output and "litlogger" not in output
    assert "LeafSpec" not in output  # torch's FutureWarning raised by Lightning's own code
    net_row = next(line for line in output.splitlines() if "│ net " in line)
    flops = net_row.split("│")[6].strip()  # | idx | Name | Type | Params | Mode | FLOPs | In sizes | Out sizes |
    assert flops not in ("0", ""), net_row

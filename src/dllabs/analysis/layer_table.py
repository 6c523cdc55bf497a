"""A per-layer table of shapes, parameters and multiply-accumulates (MACs) for any ``nn.Module``.

The model runs once on an example input with forward hooks on every convolution, linear, recurrent
(LSTM/GRU/RNN) and embedding layer: built-in ones, the project's own ``dllabs.nets.layers`` and
(when ``transformers`` is loaded) GPT-2's ``Conv1D``. A layer called several times adds up its MACs.

Counting conventions (they are printed with the table):

- ``params`` counts weight elements only (the lab's convention); ``bias`` counts bias elements; the
  "with biases" total is their sum, and ``model params`` counts every parameter of the model (norms too).
  A tensor shared by several layers (tied embeddings) is shown in each row but counted once in the totals
  (``tied`` = elements already counted in an earlier row).
- ``macs`` counts the multiply-accumulates with the weights for the given input, batch included: each
  weight element is used once per output position (conv: ``H_out*W_out*k_h*k_w*C_in/groups*C_out``;
  linear: ``in*out`` per row; recurrent: every weight matrix once per time step and direction).
- ``bias adds`` counts the additions of bias elements (one per output element); they are not MACs.
  Embedding lookups cost no MACs. ``torch.utils.flop_counter.FlopCounterMode`` reports ``2 * macs`` FLOPs.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from dllabs.nets import layers as custom_layers

CONVENTIONS = (
    "params: weight elements only; bias: bias elements (params + bias = 'with biases').",
    (
        "MACs: multiply-accumulates with the weights for this input (batch included); "
        "bias additions are counted apart, embedding lookups are free."
    ),
)


@dataclass
class LayerRow:
    """One analysed layer. Shapes are those of the first call; MACs add up over all calls."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight_shapes: tuple[tuple[int, ...], ...]
    params: int
    bias: int
    macs: int = 0
    bias_adds: int = 0
    calls: int = 0
    tied: int = 0

    @property
    def params_with_bias(self) -> int:
        return self.params + self.bias


def first_tensor(value: Any) -> torch.Tensor | PackedSequence | None:
    """The first tensor (or packed sequence) in a module's inputs or outputs."""
    if isinstance(value, (torch.Tensor, PackedSequence)):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return first_tensor(list(value.values()))
    return None


def _data(value: torch.Tensor | PackedSequence) -> torch.Tensor:
    return value.data if isinstance(value, PackedSequence) else value


def _weights_and_biases(module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The module's own parameters split into biases (names starting with ``bias``) and weights."""
    weights, biases = [], []
    for name, param in module.named_parameters(recurse=False):
        (biases if name.startswith("bias") else weights).append(param)
    return weights, biases


def _weight_count(module: nn.Module) -> int:
    return sum(w.numel() for w in _weights_and_biases(module)[0])


def _bias_count(module: nn.Module) -> int:
    return sum(b.numel() for b in _weights_and_biases(module)[1])


# A rule maps (module, input, output) to (MACs, bias additions) for one call.
Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[int, int]]


def conv_rule(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """Every output element is a dot product of one output channel's kernel with the input."""
    per_output = module.weight.numel() // module.weight.shape[0]
    bias_adds = output.numel() if module.bias is not None else 0
    return output.numel() * per_output, bias_adds


def conv_transpose_rule(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """Every input element is scattered through one input channel's kernel into the output."""
    per_input = module.weight.numel() // module.weight.shape[0]
    bias_adds = output.numel() if module.bias is not None else 0
    return input.numel() * per_input, bias_adds


def linear_rule(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """Each output row multiplies the whole weight matrix once (``in * out`` MACs)."""
    rows = output.numel() // output.shape[-1]
    bias_adds = output.numel() if getattr(module, "bias", None) is not None else 0
    return rows * module.weight.numel(), bias_adds


def recurrent_rule(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """Each weight matrix (input-hidden, hidden-hidden, projection; all layers and directions) and each bias
    is applied once per time step of every sequence; padded positions count as steps, packed ones do not."""
    steps = input.numel() // input.shape[-1]
    return steps * _weight_count(module), steps * _bias_count(module)


def lookup_rule(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """A table lookup: no multiplications."""
    return 0, 0


LAYER_RULES: dict[type[nn.Module], Rule] = {
    nn.Conv1d: conv_rule,
    nn.Conv2d: conv_rule,
    nn.Conv3d: conv_rule,
    custom_layers.Conv2d: conv_rule,
    nn.ConvTranspose1d: conv_transpose_rule,
    nn.ConvTranspose2d: conv_transpose_rule,
    nn.ConvTranspose3d: conv_transpose_rule,
    nn.Linear: linear_rule,
    custom_layers.Linear: linear_rule,
    nn.LSTM: recurrent_rule,
    nn.GRU: recurrent_rule,
    nn.RNN: recurrent_rule,
    nn.LSTMCell: recurrent_rule,
    nn.GRUCell: recurrent_rule,
    nn.RNNCell: recurrent_rule,
    nn.Embedding: lookup_rule,
    nn.EmbeddingBag: lookup_rule,
}


def register_layer(layer_type: type[nn.Module], rule: Rule) -> None:
    """Teach the table a new layer type (``rule`` returns MACs and bias additions for one call)."""
    LAYER_RULES[layer_type] = rule


def _rule_for(module: nn.Module) -> Rule | None:
    for layer_type in type(module).__mro__:
        if layer_type in LAYER_RULES:
            return LAYER_RULES[layer_type]
    if "transformers" in sys.modules:  # GPT-2's Conv1D is a linear layer with a transposed weight
        from transformers.pytorch_utils import Conv1D

        if isinstance(module, Conv1D):
            return linear_rule
    return None


def analysed_layers(model: nn.Module) -> dict[str, tuple[nn.Module, Rule]]:
    """Layers the table covers, outermost only (a covered layer inside another is not counted twice)."""
    found: dict[str, tuple[nn.Module, Rule]] = {}
    for name, module in model.named_modules():
        rule = _rule_for(module)
        if rule is None or any(name.startswith(f"{outer}.") for outer in found):
            continue
        found[name or type(module).__name__] = (module, rule)
    return found


@dataclass
class LayerTable:
    """The analysed layers in call order, plus the model's total parameter count."""

    rows: list[LayerRow]
    model_params: int
    unused: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> LayerRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no analysed layer named {name!r}; layers: {[r.name for r in self.rows]}")

    @property
    def total_params(self) -> int:
        """Weight elements, each shared tensor once."""
        return sum(r.params for r in self.rows) - self.total_tied

    @property
    def total_bias(self) -> int:
        return sum(r.bias for r in self.rows)

    @property
    def total_tied(self) -> int:
        return sum(r.tied for r in self.rows)

    @property
    def total_params_with_bias(self) -> int:
        return self.total_params + self.total_bias

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def total_bias_adds(self) -> int:
        return sum(r.bias_adds for r in self.rows)

    def records(self) -> list[dict[str, Any]]:
        """One plain dict per layer (shapes as ``AxBxC`` strings), for CSV/JSON."""
        out = []
        for row in self.rows:
            record = {f.name: getattr(row, f.name) for f in fields(row)}
            record["input_shape"] = _shape_text(row.input_shape)
            record["output_shape"] = _shape_text(row.output_shape)
            record["weight_shapes"] = _weights_text(row.weight_shapes)
            record["params_with_bias"] = row.params_with_bias
            out.append(record)
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Write one line per layer and a final ``TOTAL`` line."""
        path = Path(path)
        records = self.records()
        columns = list(records[0]) if records else [f.name for f in fields(LayerRow)] + ["params_with_bias"]
        total = dict.fromkeys(columns, "")
        total.update(
            name="TOTAL",
            params=self.total_params,
            bias=self.total_bias,
            params_with_bias=self.total_params_with_bias,
            macs=self.total_macs,
            bias_adds=self.total_bias_adds,
            calls=sum(r.calls for r in self.rows),
            tied=self.total_tied,
        )
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows([*records, total])
        return path

    def _display_rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["layer", "type", "input", "output", "weight", "params", "bias", "MACs"]
        body = [
            [
                row.name,
                row.kind,
                _shape_text(row.input_shape),
                _shape_text(row.output_shape),
                _weights_text(row.weight_shapes),
                f"{row.params:,}" + (" (tied)" if row.tied else ""),
                f"{row.bias:,}",
                f"{row.macs:,}" + (f" ({row.calls} calls)" if row.calls > 1 else ""),
            ]
            for row in self.rows
        ]
        body.append(
            [
                "total",
                "",
                "",
                "",
                "",
                f"{self.total_params:,}",
                f"{self.total_bias:,}",
                f"{self.total_macs:,}",
            ]
        )
        return header, body

    def summary_lines(self) -> list[str]:
        lines = [
            (
                f"params: {self.total_params:,} weights, {self.total_params_with_bias:,} with biases; "
                f"model params (all, incl. norms): {self.model_params:,}"
            ),
            f"MACs: {self.total_macs:,} (weights); bias additions: {self.total_bias_adds:,}",
            *CONVENTIONS,
        ]
        if self.total_tied:
            lines.append(f"tied weights ({self.total_tied:,} elements) are counted once in the totals")
        if self.unused:
            lines.append(f"not called by this input (not in the table): {', '.join(self.unused)}")
        return lines

    def to_markdown(self) -> str:
        header, body = self._display_rows()
        numeric = {5, 6, 7}
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|",
        ]
        for cells in body:
            cells = [f"`{c}`" if i in (2, 3, 4) and c else c for i, c in enumerate(cells)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join([*lines, "", *(f"- {line}" for line in self.summary_lines())]) + "\n"

    def to_text(self) -> str:
        header, body = self._display_rows()
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        right = {5, 6, 7}

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )

        rule = "-" * len(line(header))
        return "\n".join(
            [
                line(header),
                rule,
                *(line(c) for c in body[:-1]),
                rule,
                line(body[-1]),
                "",
                *self.summary_lines(),
            ]
        )

    def __str__(self) -> str:
        return self.to_text()


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _weights_text(shapes: tuple[tuple[int, ...], ...]) -> str:
    return ", ".join(_shape_text(s) for s in shapes)


def layer_table(model: nn.Module, *inputs: Any, **kwargs: Any) -> LayerTable:
    """Run ``model(*inputs, **kwargs)`` once (eval mode, no grad); tabulate its conv/linear/RNN/embedding
    layers.

    The model's training mode is restored afterwards.
    """
    analysed = analysed_layers(model)
    rows: dict[str, LayerRow] = {}
    counted: set[int] = set()  # ids of weight tensors already in a row (tied weights count once)

    def make_hook(name: str, module: nn.Module, rule: Rule) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple, hook_kwargs: dict, output: Any) -> None:
            first_in = first_tensor(args) if args else first_tensor(hook_kwargs)
            first_out = first_tensor(output)
            if first_in is None or first_out is None:
                return
            x, y = _data(first_in), _data(first_out)
            if name not in rows:
                weights, biases = _weights_and_biases(mod)
                rows[name] = LayerRow(
                    name=name,
                    kind=type(mod).__name__,
                    input_shape=tuple(x.shape),
                    output_shape=tuple(y.shape),
                    weight_shapes=tuple(tuple(w.shape) for w in weights),
                    params=sum(w.numel() for w in weights),
                    bias=sum(b.numel() for b in biases),
                    tied=sum(w.numel() for w in weights if id(w) in counted),
                )
                counted.update(id(w) for w in weights)
            macs, bias_adds = rule(mod, x, y)
            row = rows[name]
            row.macs += int(macs)
            row.bias_adds += int(bias_adds)
            row.calls += 1

        return hook

    handles = [
        module.register_forward_hook(make_hook(name, module, rule), with_kwargs=True)
        for name, (module, rule) in analysed.items()
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    unique_params = {id(p): p.numel() for p in model.parameters()}
    return LayerTable(
        rows=list(rows.values()),
        model_params=sum(unique_params.values()),
        unused=[name for name in analysed if name not in rows],
    )

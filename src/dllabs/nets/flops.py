"""A FLOP formula torch's ``FlopCounterMode`` lacks, so Lightning's model summary counts LSTM nets on a CPU.

On a CPU, ``nn.LSTM`` over a padded batch runs as one oneDNN op per layer and direction,
``aten.mkldnn_rnn_layer``, which the counter has no formula for: the summary of the lab-6 nets showed only the
linear head ("Total FLOPs: 1.0 K"). The formula counts what the op computes the way the counter counts the same
LSTM when it is decomposed into matmuls (a packed sequence, or the meta device): the two gate matmuls of every
time step, ``2 * steps * rows * 4H * (input + H)``; element-wise gate arithmetic is not counted, as for every op.
(On CUDA the cuDNN op is not counted.) ``dllabs.nets`` imports this module, which registers the formula.
"""

from __future__ import annotations

from torch.ops import aten
from torch.utils.flop_counter import register_flop_formula


@register_flop_formula(aten.mkldnn_rnn_layer)
def _mkldnn_lstm_layer_flops(input_shape, weight_ih_shape, weight_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """One layer and direction: ``input`` ``[T, B, I]`` (or ``[B, T, I]``), ``weight_ih`` ``[4H, I]``, ``weight_hh`` ``[4H, H]``."""
    steps_times_rows = int(input_shape[0]) * int(input_shape[1])
    gates, inputs = int(weight_ih_shape[0]), int(weight_ih_shape[1])
    return 2 * steps_times_rows * gates * (inputs + int(weight_hh_shape[1]))

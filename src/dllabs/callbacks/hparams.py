"""TensorBoard's HParams tab for every run: its hyper-parameters, status and the metrics to compare, at the end.

The row is :func:`dllabs.reporting.hparams.run_row`, the same one ``scripts/report.py`` prints. It is written
once, when the run ends (``cli`` calls :meth:`HParams.log_run` with the run's record, also when the run
diverged or failed), because TensorBoard keeps the first hparams summary of a run and the status is known
only then. A run killed outright (SIGKILL) has no row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from dllabs.reporting.hparams import RunRow, live_row

log = logging.getLogger("dllabs")


def write_hparams(writer: SummaryWriter, row: RunRow, step: int = 0) -> None:
    """Write ``row`` in the form the HParams plugin reads: the session start (hyper-parameters) and end (FAILURE
    unless the status is ``ok``) summaries, and each metric as a scalar.

    No per-run experiment summary: TensorBoard would take the columns of whichever run it finds first; without
    one it builds them from all runs' hyper-parameters and scalars, so a log dir holding runs of different
    tasks (``outputs/``) shows every run's own keys.
    """
    _, session_start, _ = hparams_summaries(row.hparams, row.metrics)
    ended = _session_end(api_pb2.Status.Value("STATUS_SUCCESS") if row.hparams.get("status") == "ok" else api_pb2.Status.Value("STATUS_FAILURE"))
    for name, value in row.metrics.items():
        writer.add_scalar(name, value, step)  # (re)opens the event file when Lightning has closed it
    # SummaryWriter.add_hparams would write into a new sub-run; these summaries belong to this run
    for summary in (session_start, ended):
        writer.file_writer.add_summary(summary)
    writer.flush()


def _session_end(status: int) -> Summary:
    """The plugin's session-end summary with ``status`` (torch's ``hparams`` always says success)."""
    content = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status), version=metadata.PLUGIN_DATA_VERSION
    )
    plugin_data = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString())
    return Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=SummaryMetadata(plugin_data=plugin_data))])


class HParams(L.Callback):
    """Logs the run's :class:`~dllabs.reporting.hparams.RunRow` to every TensorBoard logger when the run ends;
    other loggers get the hyper-parameters through ``log_hyperparams`` (e.g. ``hparams.yaml`` of the CSV logger)."""

    def log_run(self, trainer: L.Trainer, config: DictConfig, record: Mapping[str, Any]) -> RunRow | None:
        if not trainer.is_global_zero:
            return None
        try:
            row = live_row(config, record)
        except Exception as err:  # noqa: BLE001 - a dashboard must never fail a finished run
            log.warning("could not build the run's hyper-parameter row: %s", err)
            return None
        for logger in trainer.loggers:
            try:
                if isinstance(logger, TensorBoardLogger):
                    write_hparams(logger.experiment, row, trainer.global_step)
                    logger.experiment.close()  # the run is over; Lightning may already have closed it once
                else:
                    logger.log_hyperparams(row.hparams)
                    logger.save()
            except Exception as err:  # noqa: BLE001 - a dashboard must never lose the run's metrics.json
                log.warning("could not log hyper-parameters to %s: %s", type(logger).__name__, err)
        return row

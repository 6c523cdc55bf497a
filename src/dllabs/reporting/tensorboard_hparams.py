"""A run's row in TensorBoard's HParams tab: its hyper-parameters, status and the metrics to compare.

The row is :func:`dllabs.reporting.hparams.run_row`, the same one ``scripts/report.py`` prints.
:class:`~dllabs.callbacks.run_record.RunRecord` writes it once, when the run ends (also when it diverged, failed or
was pruned), because TensorBoard keeps the first hparams summary of a run and the status is known only then.
A run killed outright (SIGKILL) has no row.
"""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from dllabs.reporting.hparams import RunRow

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


def log_row(trainer: L.Trainer, row: RunRow) -> None:
    """``row`` to every logger of ``trainer``: TensorBoard gets :func:`write_hparams`, other loggers the
    hyper-parameters through ``log_hyperparams`` (e.g. ``hparams.yaml`` of the CSV logger). A logger that fails
    is warned about: a dashboard must never lose the run's ``metrics.json``."""
    for logger in trainer.loggers:
        try:
            if isinstance(logger, TensorBoardLogger):
                write_hparams(logger.experiment, row, trainer.global_step)
                logger.experiment.close()  # the run is over; Lightning may already have closed it once
            else:
                logger.log_hyperparams(row.hparams)
                logger.save()
        except Exception as err:  # noqa: BLE001 - see the docstring
            log.warning("could not log hyper-parameters to %s: %s", type(logger).__name__, err)

"""What Lightning prints to the console: each message once, without its adverts.

:func:`silence_lightning_tips` is for any code that builds a Trainer (a command, the ledger's inference pass);
:func:`route_lightning_logs_through_hydra` is for a command under Hydra's job logging (every job of
:func:`dllabs.entry.hydra_main`).
"""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_TIPS = "💡 Tip:"  # Lightning's adverts for its cloud products (litlogger, litmodels)


class _DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_LIGHTNING_TIPS)


def silence_lightning_tips() -> None:
    """Drop Lightning's adverts for its cloud products where they are logged (any script that builds a Trainer)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTips())


def route_lightning_logs_through_hydra() -> None:
    """Each console message once: Lightning's own handlers go, its records reach Hydra's handlers.

    ``import lightning`` puts a ``INFO: ...`` console handler on the ``lightning`` logger (and ``lightning.pytorch``
    / ``lightning.fabric`` add theirs when no root handler exists yet), while Hydra's job logging prints the same
    records again through the root logger. Also silenced where they are raised: Lightning's cloud-product tips and
    torch's FutureWarning about ``LeafSpec``, which Lightning's own ``_pytree`` triggers (nothing a user can change).
    """
    import lightning  # noqa: F401  - its import adds the handler removed here; a later import would add it again

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    silence_lightning_tips()
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )

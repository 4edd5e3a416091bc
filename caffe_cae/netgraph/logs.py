"""Logging helpers of the net builder."""
from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def quiet_loggers(prefix: str):
    """Silence the loggers below ``prefix`` for a moment (the in-memory upgrade is reported by one
    notice, not by the migrator's step-by-step log)."""
    loggers = [logging.getLogger(prefix)] + [
        logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(prefix + ".")
    ]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before):
            logger.disabled = disabled

"""Summaries of a run or a multirun folder: tables and figures."""

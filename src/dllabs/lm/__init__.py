"""Causal language-model helpers for the GPT-2 lab: loading, fine-tuning set-up, perplexity.

Everything here imports transformers/peft lazily or only when the LM lab is used, so the other labs start fast.
"""

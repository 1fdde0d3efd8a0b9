"""Turning a prompt string into the text a model sees (``data.apply_chat_template``)."""

from __future__ import annotations

from typing import Any


def render_prompt(tokenizer: Any, prompt: str, apply_chat_template: bool, system_prompt: str | None = None) -> str:
    """``prompt`` as is, or wrapped by the tokenizer's chat template as one user turn with the
    assistant's turn opened (``add_generation_prompt``)."""
    if not apply_chat_template:
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("data.apply_chat_template is true but the tokenizer has no chat template; "
                         "set data.apply_chat_template=false or use a tokenizer that has one")
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

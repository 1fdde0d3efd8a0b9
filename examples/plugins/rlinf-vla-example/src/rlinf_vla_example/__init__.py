"""rlinf-vla-example: an rlinf policy plugin, the model ``tiny_vla`` (a small vision-language-action policy)."""

__version__ = "0.1.0"

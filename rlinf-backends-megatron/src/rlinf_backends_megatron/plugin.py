"""The rlinf plugin of rlinf-backends-megatron (entry point in the group ``rlinf.plugins``).

It registers no component yet: components are added here as they are implemented, never as
placeholders.
"""

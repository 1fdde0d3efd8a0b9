"""The rlinf plugin of rlinf-algos (entry point in the group ``rlinf.plugins``)."""

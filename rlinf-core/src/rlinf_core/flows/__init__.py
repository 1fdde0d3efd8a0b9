"""Task flows (kind ``flow``, ``runner.task_type``). Import torch lazily: nothing here is imported
by ``import rlinf_core``; ``rlinf_core.flows.reasoning`` is loaded when a run uses it."""

"""``python -m wayline.demo``: an order workflow that survives ``kill -9``.

The demo runs the workflow in ``_order.py`` in a worker subprocess on a SQLite file, kills the
worker with SIGKILL in the middle of the run, starts a new worker on the same file and shows
the run finishing from its last checkpoint: the steps that had completed do not run again.
``_driver.py`` is the parent that does the killing; ``_worker.py`` is the child.
"""

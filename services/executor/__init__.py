"""The executor: pulls run requests from the RUNS stream and runs worklet block graphs.

User code never runs in this process: code blocks go to a pool of warm worker subprocesses
(``sandbox.py`` here, ``worker.py`` there), each confined before it serves (``confine.py``).
"""

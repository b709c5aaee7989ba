"""What both engines share: the Job base, result and failure records, exit codes, the run's options.

exitcodes.py  ExitCode: every exit code of the tool, the CLI's and a run's
options.py    RunOptions and RunResult: the public face of a run
records.py    the result and failure rows, and their Arrow schemas
job.py        Job: part writers, stats, budgets, stop rules, events, failure rows, commits
history.py    a run's outcome and its entry in job.json

Nothing here imports an engine (pipeline/online, pipeline/batch) or the wiring (pipeline/wiring).
"""

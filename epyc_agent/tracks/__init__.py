"""Research tracks: the lab's plan as data (research/tracks.yaml), a benchmark runner that compares
each method with the plain greedy baseline, reproducible run folders, and the regenerated report.

The steps are separate library functions so a pipeline can run them one by one:
`plan.prepare_run` (validate) -> `runner.execute` (measure) -> `results.record` (store, log, report).
"""

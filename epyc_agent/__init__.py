"""epyc-agent: an agent-governed session runner with structured audit logging.

Kept import-free on purpose: the hook and the one-line log verbs start a new
Python process per call, so every module pays only for what it uses.
"""

__version__ = "0.1.0"

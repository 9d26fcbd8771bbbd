"""Draft sources for the speculative engine: one interface (`DraftSource`), composable in a `Stack`."""

from epyc_agent.inference.sources.base import Backoff, Draft, DraftSource

__all__ = ["Backoff", "Draft", "DraftSource"]

"""The audit log: schema (v1 events), writer (append-only shards), reader (merged, upgraded).

Import the submodules directly; this package stays empty so the hook path pays
only for what it uses.
"""

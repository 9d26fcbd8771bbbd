"""Host tooling for the sysadmin role: audit, health checks, disk monitor, cleanup."""

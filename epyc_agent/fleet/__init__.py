"""The fleet store: every host's audit log in one ClickHouse table (`log ship`), and the
analyzers answered there with SQL (`log analyze --engine clickhouse`)."""

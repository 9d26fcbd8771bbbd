"""Log analyzers: summary, errors, sessions, commands, files, loops, rollbacks, tail, follow.

Built for a million events: shards are scanned as bytes, our own v1 lines are
recognised without a full JSON parse, everything else goes through the
Foundation reader's careful path (legacy formats, corrupt lines counted).
Modes that do not need global time order scan shards independently (in worker
processes when the log is large); `--tail`/`--timeline` read shards backwards.
Never imports click.
"""

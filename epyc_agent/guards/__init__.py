"""The lab's rules, enforced on Claude Code tool calls before they run.

`files` (Write/Edit outside the root), `bash` (writes and destructive commands in a
shell command), `retry` (the same failing command a 4th time). Each returns
`Finding`s; the hook turns them into deny / warn by the configured mode.
"""

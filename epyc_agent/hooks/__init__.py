"""Claude Code hooks: payload -> guards -> decision -> events."""

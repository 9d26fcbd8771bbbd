#!/usr/bin/env bash
# Install the Claude Code CLI for the real-client tests into DIR (never globally).
# VERSION equal to the pin in tests/claude_code/package.json installs exactly its lock file;
# any other version is installed by name, for trying the harness against it.
set -euo pipefail
version=$1 dir=$2
pin_dir=$(cd "$(dirname "$0")/../tests/claude_code" && pwd)
mkdir -p "$dir"
cd "$dir"
export npm_config_cache="$dir/.npm-cache" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
if grep -q "\"@anthropic-ai/claude-code\": \"$version\"" "$pin_dir/package.json"; then
  cp "$pin_dir/package.json" "$pin_dir/package-lock.json" .
  npm ci --loglevel=error
else
  printf '{"private": true, "dependencies": {"@anthropic-ai/claude-code": "%s"}}\n' "$version" > package.json
  npm install --loglevel=error
fi
"$dir/node_modules/.bin/claude" --version

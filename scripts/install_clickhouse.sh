#!/usr/bin/env bash
# Unpack Debian's clickhouse-server VERSION into DIR for the fleet tests (never a system install):
# `apt-get download` the server, its common files and every shared library it needs that this
# machine lacks, `dpkg -x` them into DIR/root, and write DIR/clickhouse-server, which runs the
# server with those libraries. Needs apt (Debian/Ubuntu); no root.
set -euo pipefail
version=$1 dir=$2
for tool in apt-get apt-cache dpkg dpkg-query; do
  command -v "$tool" >/dev/null || { echo "install_clickhouse: $tool not found (Debian's package tools are needed)" >&2; exit 2; }
done
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/debs" "$tmp/root"
trap 'rm -rf "$tmp"' EXIT
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
libs=()
for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances "clickhouse-server=$version" | grep -v '^ ' | grep -v '^<' | sort -u); do
  case $p in lib*) installed "$p" || libs+=("$p") ;; esac
done
(cd "$tmp/debs" && apt-get download -q "clickhouse-server=$version" "clickhouse-common=$version" "${libs[@]}")
for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$tmp/root"; done
rm -rf "$tmp/debs"
cat > "$tmp/clickhouse-server" <<'EOF'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu:$here/root/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/root/usr/sbin/clickhouse-server" "$@"
EOF
chmod +x "$tmp/clickhouse-server"
missing=$(LD_LIBRARY_PATH="$tmp/root/usr/lib/x86_64-linux-gnu:$tmp/root/lib/x86_64-linux-gnu" \
          ldd "$tmp/root/usr/sbin/clickhouse-server" | grep 'not found' || true)
[ -z "$missing" ] || { echo "install_clickhouse: libraries still missing:" >&2; echo "$missing" >&2; exit 1; }
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "clickhouse-server $version in $dir"

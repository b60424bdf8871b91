#!/usr/bin/env bash
# Provide the Pulumi CLI at exactly the version of the pinned Python SDK, offline.
#
# 1. A `pulumi` on PATH at that version (with its language host beside it) is used as it is.
# 2. Otherwise the CLI is built from the Go module proxy with the machine's `go`, from our tools module
#    (tools/engine), together with our own Python language host (tools/engine/langhost: upstream's lives in a
#    module the proxy does not serve). The language host's script (pulumi-language-python-exec) is copied out
#    of the sdk/v3 module at the same version.
# 3. Every time, the dynamic-provider plugin launcher (pulumi-resource-pulumi-python) is installed from
#    tools/engine/bin: it serves our providers with lattigo_fleet.provider_host (see its docstring).
# The result goes to a per-version cache outside the repo, so every clone on this machine reuses it.
# Prints the bin directory to put first on PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=v$(sed -n 's/^pulumi==//p' "$root/constraints.txt")
[ "$version" != "v" ] || { echo "ensure-pulumi: no pulumi pin in constraints.txt" >&2; exit 1; }

tools="$root/tools/engine"
for mod in pkg sdk; do
  if ! grep -q "github.com/pulumi/pulumi/$mod/v3 $version\b" "$tools/go.mod"; then
    echo "ensure-pulumi: tools/engine/go.mod does not pin github.com/pulumi/pulumi/$mod/v3 $version" >&2
    echo "  (the CLI must match the Python SDK in constraints.txt)" >&2
    exit 1
  fi
done

# 1. An installed CLI at the pinned version (it serves dynamic providers with the stock SDK server).
if existing=$(command -v pulumi 2>/dev/null) && [ "$(pulumi version 2>/dev/null)" = "$version" ] \
   && [ -x "$(dirname "$existing")/pulumi-language-python" ] \
   && [ "$existing" != "${LATTIGO_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lattigo-fleet}/pulumi/$version/bin/pulumi" ]; then
  dirname "$existing"
  exit 0
fi

# 2. Our cache, built once per version and per content of what the build reads (recipe: bump to rebuild).
recipe=2
cache=${LATTIGO_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lattigo-fleet}
stamp_src=$( (echo "recipe $recipe"; cat "$tools/go.mod" "$tools/go.sum" "$tools"/langhost/*.go) | sha256sum | cut -c1-16)
bin="$cache/pulumi/$version/bin"
install_launcher() {
  # 3. Cheap and idempotent, so a change to the launcher needs no rebuild of the CLI.
  cmp -s "$tools/bin/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python" \
    || install -m 0755 "$tools/bin/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
}
if [ -f "$bin/.built-$stamp_src" ]; then
  install_launcher
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "ensure-pulumi: 'go' is needed to build the Pulumi CLI $version" >&2; exit 1; }
echo "ensure-pulumi: building Pulumi CLI $version into $bin (first time on this machine: several minutes)" >&2
mkdir -p "$bin"
tmp=$(mktemp -d "$cache/pulumi/$version/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"
(
  cd "$tools"
  export GOFLAGS=-mod=readonly
  go build -trimpath -ldflags "$ldflags" -o "$tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  go build -trimpath -ldflags "$ldflags" -o "$tmp/pulumi-language-python" ./langhost
  sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$tmp/"
) >&2
"$tmp/pulumi" version | grep -qx "$version" || { echo "ensure-pulumi: built CLI does not report $version" >&2; exit 1; }
rm -f "$bin"/.built-*
mv -f "$tmp"/pulumi* "$bin/"
touch "$bin/.built-$stamp_src"
install_launcher
echo "$bin"

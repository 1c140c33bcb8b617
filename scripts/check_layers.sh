#!/usr/bin/env bash
# Checks the layering of the source tree: a file may include only its own or a lower layer.
#
#   scripts/check_layers.sh [ROOT]      (ROOT: the source tree, default: this script's parent)
#
# Layers, lowest first: core io ingest segmentation personalisation serving pipeline cli.
# A file's layer is its folder: include/segrec/<layer>/..., src/<layer>/...; the forwarding
# headers include/segrec/comm.hpp and error.hpp are core. Includes read: "segrec/<layer>/..."
# (and "segrec/comm.hpp", "segrec/error.hpp") and local "name.hpp" beside the including file.
# Prints "file:line: <layer> includes <higher layer> (path)" for each violation and
# "file: unknown layer folder" for a file outside the known layers; exits 1 on any, else 0.
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT"
[[ -d src && -d include/segrec ]] || { echo "check_layers: no src/ and include/segrec/ in $ROOT" >&2; exit 2; }

LAYERS="core io ingest segmentation personalisation serving pipeline cli"

# Every source and header file, then every quoted include line as "file:line:text".
{
  find include/segrec src -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' -o -name '*.cc' \) \
    | sort | sed 's/^/F /'
  grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' include/segrec src \
    --include='*.hpp' --include='*.h' --include='*.cpp' --include='*.cc' | sort -t: -k1,1 -k2,2n \
    | sed 's/^/I /'
} | awk -v layers="$LAYERS" '
  BEGIN { n = split(layers, names, " "); for (i = 1; i <= n; i++) rank[names[i]] = i; bad = 0 }
  # Layer of a path relative to ROOT, or "" when it is in no known layer folder.
  function layer_of(path,   parts, k) {
    k = split(path, parts, "/")
    if (parts[1] == "include" && parts[2] == "segrec") {
      if (k == 3) return (parts[3] == "comm.hpp" || parts[3] == "error.hpp") ? "core" : ""
      return (parts[3] in rank) ? parts[3] : ""
    }
    if (parts[1] == "src" && k >= 3) return (parts[2] in rank) ? parts[2] : ""
    return ""
  }
  # Removes "." and "dir/.." segments.
  function normalise(path,   parts, k, i, out, m) {
    k = split(path, parts, "/"); m = 0
    for (i = 1; i <= k; i++) {
      if (parts[i] == "." || parts[i] == "") continue
      if (parts[i] == ".." && m > 0 && out[m] != "..") { m--; continue }
      out[++m] = parts[i]
    }
    path = ""
    for (i = 1; i <= m; i++) path = path (i > 1 ? "/" : "") out[i]
    return path
  }
  $1 == "F" {
    file = substr($0, 3)
    if (layer_of(file) == "") { print file ": unknown layer folder"; bad = 1 }
    next
  }
  $1 == "I" {
    rest = substr($0, 3)
    file = rest; sub(/:.*/, "", file)
    line = rest; sub(/^[^:]*:/, "", line); text = line; sub(/:.*/, "", line); sub(/^[^:]*:/, "", text)
    target = text; sub(/^[^"]*"/, "", target); sub(/".*/, "", target)
    from = layer_of(file)
    if (from == "") next  # reported above
    if (target ~ /^segrec\//) {
      to = layer_of("include/" target)
      if (to == "") { print file ":" line ": " from " includes an unknown layer (" target ")"; bad = 1; next }
    } else {
      dir = file; sub(/\/[^\/]*$/, "", dir)
      to = layer_of(normalise(dir "/" target))
      if (to == "") next  # not a project header (e.g. a generated or third-party file)
    }
    if (rank[to] > rank[from]) { print file ":" line ": " from " includes " to " (" target ")"; bad = 1 }
  }
  END { exit bad }
'

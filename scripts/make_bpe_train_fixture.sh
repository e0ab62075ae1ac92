#!/usr/bin/env bash
# Makes tests/data/fixtures/tokenizers/bpe_train/: a generated corpus and the
# tokenizer that Hugging Face tokenizers' BpeTrainer learns from it, so that
# src/tokenizers/bpe_trainer_test.cc can check mixpeft's trainer merge for
# merge against HF's.
#
#   scripts/make_bpe_train_fixture.sh            # writes the fixture
#   scripts/make_bpe_train_fixture.sh --check    # regenerates in a temp dir, compares
#
# HF side: tokenizers 0.23.2 from npm (its Node binding, a build of the same
# Rust crate the Python package wraps). Its Tokenizer.train(files) uses the
# model's default BpeTrainer (vocab_size 30000, min_frequency 0, no special
# tokens, alphabet = the characters seen) with ByteLevel(add_prefix_space=false,
# use_regex=true), reading the files line by line as train_from_files does.
#
# Needs: npm (registry access), node.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixture="$repo_root/tests/data/fixtures/tokenizers/bpe_train"
mode="write"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  *) echo "make_bpe_train_fixture.sh: unknown argument '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac
for tool in npm node; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "make_bpe_train_fixture.sh: '$tool' is not installed" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund tokenizers@0.23.2 >/dev/null)
out="$work/out"
mkdir -p "$out"

cat >"$work/make.js" <<'EOF'
// Corpus: seeded pseudo-random text with what a byte-level trainer must get
// right: repeated words of many frequencies (so there are count ties),
// capitals, contractions, digits, punctuation, accented letters, CJK, emoji,
// tabs, runs of spaces, blank lines, "\r\n" endings and a last line without
// a newline.
const fs = require('fs');
const path = require('path');
const hf = require('tokenizers');
const out = process.argv[2];

let state = 20240611;
function rand() {  // mulberry32
  state = (state + 0x6D2B79F5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(rand() * list.length)];
const words = ['the', 'of', 'and', 'to', 'in', 'is', 'that', 'for', 'it', 'as', 'with', 'was',
  'on', 'be', 'by', 'this', 'are', 'or', 'from', 'at', 'which', 'but', 'not', 'have', 'an',
  'they', 'one', 'all', 'were', 'there', 'token', 'tokens', 'tokenizer', 'merge', 'merges',
  'byte', 'bytes', 'pair', 'pairs', 'train', 'training', 'trainer', 'count', 'counting',
  'vocabulary', 'frequency', 'frequent', 'lower', 'lowest', 'newer', 'newest', 'wider', 'widest',
  'café', 'naïve', 'über', 'straße', 'façade', 'élan', '東京', '日本語', 'данные', 'слово',
  'λόγος', '🙂', '🚀', 'x²', 'a_b', 'don\'t', 'it\'s', 'we\'re', 'I\'ve', 'they\'ll', 'she\'d',
  'I\'m'];
// Zipf-like: word i is drawn with weight 1 / (i + 1).
const weights = words.map((_, i) => 1 / (i + 1));
const total = weights.reduce((a, b) => a + b, 0);
function word() {
  let r = rand() * total;
  for (let i = 0; i < words.length; i++) {
    r -= weights[i];
    if (r <= 0) return words[i];
  }
  return words[words.length - 1];
}
const lines = [];
for (let l = 0; l < 700; l++) {
  const n = 1 + Math.floor(rand() * 12);
  const parts = [];
  for (let i = 0; i < n; i++) {
    let w = word();
    const r = rand();
    if (r < 0.08) w = w[0].toUpperCase() + w.slice(1);
    else if (r < 0.11) w = String(Math.floor(rand() * 100000));
    else if (r < 0.15) w += pick([',', '.', ';', '!', '?', '...', ')', '"']);
    else if (r < 0.17) w = pick(['(', '"', '--', '#']) + w;
    parts.push(w);
    if (i + 1 < n) parts.push(pick([' ', ' ', ' ', ' ', ' ', ' ', '  ', '\t', '   ']));
  }
  let line = parts.join('');
  const e = rand();
  if (e < 0.05) line += '\r\n';
  else if (e < 0.08) line += '\n\n\n';
  else if (e < 0.12) line += '  \n';
  else line += '\n';
  lines.push(line);
}
lines.push('the last line has no newline');
const corpus = path.join(out, 'corpus.txt');
fs.writeFileSync(corpus, lines.join(''));

const tok = new hf.Tokenizer(hf.BPE.empty());
tok.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
tok.train([corpus]);
tok.save(path.join(out, 'hf_tokenizer.json'), true);
EOF
(cd "$work" && node make.js "$out")

cat >"$out/README.txt" <<'EOF'
Made by scripts/make_bpe_train_fixture.sh (byte-identical when run again).
corpus.txt          generated text (seeded; see the script)
hf_tokenizer.json   Hugging Face tokenizers 0.23.2 (npm) trained on corpus.txt:
                    Tokenizer(BPE()), ByteLevel(add_prefix_space=false) pre-tokenizer,
                    tokenizer.train([corpus.txt]) with the default BpeTrainer
                    (vocab_size 30000, min_frequency 0, no special tokens, no
                    initial alphabet: only the characters seen).
EOF

if [[ "$mode" == "check" ]]; then
  diff -r "$out" "$fixture" && echo "make_bpe_train_fixture.sh: $fixture is up to date"
else
  mkdir -p "$fixture"
  cp "$out"/* "$fixture"/
  echo "make_bpe_train_fixture.sh: wrote $fixture ($(wc -c <"$fixture/corpus.txt") corpus bytes," \
    "$(node -e "console.log(require('$fixture/hf_tokenizer.json').model.merges.length)") HF merges)"
fi

// Text helpers shared by the dataset builders: normalization, sentence
// chunking, deterministic hash-based splits, JSONL/text writers.
// Pure functions of their input (no randomness, no locale, no clock), so the
// outputs are byte-identical on every machine.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const sha256 = (s) => createHash('sha256').update(s).digest('hex');

// Whitespace-separated words.
export function words(s) {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const space = c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x3000 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x1680 || c === 0x202f || c === 0x205f || c === 0xfeff || c === 0x85;
    if (space) inWord = false;
    else if (!inWord) {
      inWord = true;
      n++;
    }
  }
  return n;
}

// Byte order (not locale) comparison, for sorts that must not depend on ICU.
export const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

const NAMED_ENTITIES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', copy: '©', reg: '®',
  trade: '™', hellip: '…', mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“',
  rdquo: '”', bull: '•', middot: '·', pound: '£', euro: '€', cent: '¢', yen: '¥',
  deg: '°', times: '×', eacute: 'é', egrave: 'è', aacute: 'á', agrave: 'à',
  iacute: 'í', oacute: 'ó', uacute: 'ú', ntilde: 'ñ', ccedil: 'ç', uuml: 'ü',
  ouml: 'ö', auml: 'ä', szlig: 'ß', laquo: '«', raquo: '»', sect: '§', para: '¶',
};

// Decodes HTML/XML character references. Control characters (Reuters' &#3;
// end-of-text mark, &#127;) become nothing.
export function decodeEntities(s) {
  return s.replace(/&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z][a-zA-Z0-9]{1,7});/g, (m, e) => {
    let cp;
    if (e[0] === '#') cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    else if (Object.hasOwn(NAMED_ENTITIES, e.toLowerCase())) return NAMED_ENTITIES[e.toLowerCase()];
    else return m;
    if (!(cp > 0 && cp <= 0x10ffff) || (cp >= 0xd800 && cp <= 0xdfff)) return '';
    if (cp < 32 && cp !== 9 && cp !== 10) return '';
    if (cp >= 127 && cp < 160) return '';
    return String.fromCodePoint(cp);
  });
}

// Drops control characters (keeps \n and \t) and U+FFFD replacement
// characters (bytes the npm spam corpus lost before we got it), normalizes
// CRLF, non-breaking and other wide spaces, and drops U+FEFF.
export function cleanChars(s) {
  return s
    .replace(/\r\n?/g, '\n')
    .replace(/[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g, ' ')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\ufeff\ufffd\ufffe\uffff]/g, '');
}

// Paragraphs of a text: split at blank lines, whitespace inside a paragraph
// collapsed to single spaces, empty paragraphs dropped.
export function paragraphs(text) {
  return cleanChars(text)
    .split(/\n[ \t]*\n/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter(Boolean);
}

// Sentences of one paragraph. A cut is made after . ! or ? (plus closing
// quotes/brackets) followed by a space; a cut after a common abbreviation or
// a single initial ("Mr.", "U.S.", "J.") is undone.
const NO_CUT_AFTER = /(?:\b(?:Mr|Mrs|Ms|Messrs|Dr|St|Mt|Gen|Col|Capt|Lieut|Gov|Sen|Rep|Hon|Rev|Prof|Jr|Sr|No|Nos|vs|viz|cf|etc|i\.e|e\.g|Jan|Feb|Mar|Apr|Aug|Sept|Sep|Oct|Nov|Dec)|\b[A-Z]|\b[A-Z]\.[A-Z])\.$/;
export function sentences(paragraph) {
  const pieces = paragraph.match(/[^.!?]*(?:[.!?]+["'’”)\]]*(?=\s|$)|[.!?]+(?=\S)|$)/g) || [];
  // The regex above may cut inside "3.5" or "e.g" (no space after); glue
  // every piece that is not followed by whitespace back to the next one.
  const out = [];
  let cur = '';
  let pos = 0;
  for (const p of pieces) {
    if (!p) continue;
    cur += p;
    pos += p.length;
    const atSpace = pos >= paragraph.length || /\s/.test(paragraph[pos]);
    if (atSpace && !NO_CUT_AFTER.test(cur.trimEnd())) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    }
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

// Cuts a document (an array of paragraphs) into chunks of whole sentences:
// a chunk is closed once it holds >= target words, or before a sentence
// that would take it past max words (if it already holds >= min). A sentence
// longer than max words is cut into pieces of target words. A last chunk
// under min words is appended to the one before it. Paragraph breaks inside a
// chunk are kept as "\n\n".
export function chunkParagraphs(paras, { target = 150, max = 250, min = 50 } = {}) {
  const units = [];
  for (const p of paras) {
    let first = true;
    for (const s of sentences(p)) {
      const toks = s.split(/\s+/).filter(Boolean);
      if (toks.length > max) {
        for (let i = 0; i < toks.length; i += target) {
          units.push({ text: toks.slice(i, i + target).join(' '), n: Math.min(target, toks.length - i), para: first });
          first = false;
        }
      } else {
        units.push({ text: s, n: toks.length, para: first });
        first = false;
      }
    }
  }
  const chunks = [];
  let cur = '';
  let n = 0;
  let startsParagraph = false;
  const flush = () => {
    if (cur) chunks.push({ text: cur, n });
    cur = '';
    n = 0;
  };
  for (const u of units) {
    if (n >= target || (n > 0 && n + u.n > max && n >= min)) flush();
    if (!cur) startsParagraph = u.para;
    cur = cur ? cur + (u.para ? '\n\n' : ' ') + u.text : u.text;
    n += u.n;
  }
  if (n > 0 && n < min && chunks.length > 0) {
    const last = chunks[chunks.length - 1];
    last.text += (startsParagraph ? '\n\n' : ' ') + cur;
    last.n += n;
  } else flush();
  return chunks.map((c) => c.text);
}

// Deterministic stratified holdout: within each label, items are ordered by
// sha256(key) (ties by key); the first round(n * fraction) of each holdout
// go to it in turn, the rest to `rest`. Every split keeps the items' input
// order. Returns { splitName: items[] }.
export function stratifiedSplit(items, { key, label, holdouts, rest = 'train' }) {
  const assign = new Map();
  const byLabel = new Map();
  items.forEach((it, i) => {
    const l = label(it);
    if (!byLabel.has(l)) byLabel.set(l, []);
    byLabel.get(l).push({ i, h: sha256(key(it)), k: key(it) });
  });
  for (const group of byLabel.values()) {
    group.sort((a, b) => cmp(a.h, b.h) || cmp(a.k, b.k));
    let pos = 0;
    for (const [name, fraction] of holdouts) {
      const take = Math.round(group.length * fraction);
      for (const g of group.slice(pos, pos + take)) assign.set(g.i, name);
      pos += take;
    }
    for (const g of group.slice(pos)) assign.set(g.i, rest);
  }
  const out = {};
  for (const [name] of holdouts) out[name] = [];
  out[rest] = [];
  items.forEach((it, i) => out[assign.get(i)].push(it));
  return out;
}

export function cut(text, maxChars) {
  const cps = Array.from(text);
  if (cps.length <= maxChars) return text;
  let s = cps.slice(0, maxChars).join('');
  const ws = Math.max(s.lastIndexOf(' '), s.lastIndexOf('\n'));
  if (ws >= maxChars * 0.9) s = s.slice(0, ws);
  return s.trimEnd();
}

export function writeJsonl(file, records) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r) + '\n').join(''));
  return records.length;
}

export function stats(texts) {
  let w = 0;
  let c = 0;
  for (const t of texts) {
    w += words(t);
    c += t.length;
  }
  return { n: texts.length, words: w, chars: c };
}

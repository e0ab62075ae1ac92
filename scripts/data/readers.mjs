// Readers for the source formats inside the Debian packages: Weka ARFF,
// SWORD zText/zCom modules, R lazy-load databases (character vectors, and
// data frames of them and factors), and dictd dictionaries. Each is the minimum these pinned files need, and
// each fails loudly on anything else.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import zlib from 'node:zlib';

const fail = (msg) => {
  throw new Error(msg);
};

// ---- Weka ARFF: a string attribute and a nominal class -------------------
// Returns [{text, label}] from "@data" rows written as 'quoted text',label.
export function readArff(file) {
  const src = fs.readFileSync(file, 'utf8');
  const at = src.search(/^@data\s*$/im);
  if (at < 0) fail(`${file}: no @data section`);
  const rows = [];
  let i = src.indexOf('\n', at) + 1;
  while (i < src.length) {
    while (i < src.length && /\s/.test(src[i])) i++;
    if (i >= src.length) break;
    if (src[i] === '%') {
      i = src.indexOf('\n', i) + 1 || src.length;
      continue;
    }
    if (src[i] !== "'") fail(`${file}: expected a quoted string at offset ${i}`);
    let text = '';
    i++;
    for (;;) {
      if (i >= src.length) fail(`${file}: unterminated string`);
      const c = src[i];
      if (c === '\\') {
        const e = src[i + 1];
        text += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
        i += 2;
      } else if (c === "'") {
        i++;
        break;
      } else {
        text += c;
        i++;
      }
    }
    const m = /^\s*,\s*([^\s,]+)\s*(?:\n|$)/.exec(src.slice(i, i + 64));
    if (!m) fail(`${file}: expected ",label" after the string at offset ${i}`);
    rows.push({ text, label: m[1] });
    i += m[0].length;
  }
  return rows;
}

// ---- SWORD zText / zCom modules ------------------------------------------
// A module has, per testament, X.?zs (block index: 3 x uint32 LE: offset,
// compressed size, uncompressed size), X.?zv (entry index: uint32 block,
// uint32 offset, uint16 size for zText; uint32 size for 4-byte modules) and
// X.?zz (zlib blocks). Returns the entries in index order, with entries that
// point at the same text (commentaries link verse ranges) given once:
// [{testament, block, text}].
export function readSword(dir, { ext = 'b', sizeBytes = 2 } = {}) {
  const out = [];
  for (const tes of ['ot', 'nt']) {
    const blocksIdx = fs.readFileSync(`${dir}/${tes}.${ext}zs`);
    const entries = fs.readFileSync(`${dir}/${tes}.${ext}zv`);
    const data = fs.readFileSync(`${dir}/${tes}.${ext}zz`);
    const blocks = [];
    for (let i = 0; i + 12 <= blocksIdx.length; i += 12) {
      const off = blocksIdx.readUInt32LE(i);
      const len = blocksIdx.readUInt32LE(i + 4);
      const size = blocksIdx.readUInt32LE(i + 8);
      const b = len ? zlib.inflateSync(data.subarray(off, off + len)) : Buffer.alloc(0);
      if (b.length !== size) fail(`${dir}/${tes}: block ${i / 12} inflates to ${b.length} bytes, index says ${size}`);
      blocks.push(b);
    }
    const step = 8 + sizeBytes;
    if (entries.length % step !== 0) fail(`${dir}/${tes}.${ext}zv: size ${entries.length} is not a multiple of ${step}`);
    const seen = new Set();
    for (let i = 0; i < entries.length; i += step) {
      const block = entries.readUInt32LE(i);
      const off = entries.readUInt32LE(i + 4);
      const size = sizeBytes === 2 ? entries.readUInt16LE(i + 8) : entries.readUInt32LE(i + 8);
      if (size === 0) continue;
      if (block >= blocks.length || off + size > blocks[block].length) {
        fail(`${dir}/${tes}: entry ${i / step} points outside block ${block}`);
      }
      const k = `${block}:${off}:${size}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({ testament: tes, block, text: blocks[block].toString('utf8', off, off + size) });
    }
  }
  return out;
}

// OSIS markup to plain text: footnotes dropped, Strong's tags unwrapped,
// titles/paragraph/line/table elements turned into paragraph breaks.
export function osisToText(s) {
  s = s
    .replace(/<note\b[^>]*\/>/g, '')
    .replace(/<note\b[^>]*>[\s\S]*?<\/note>/g, ' ')
    .replace(/<(div|p|lb|l|lg|title|row|item|list|table|chapter)\b[^>]*>/g, '\n\n')
    .replace(/<\/(div|p|l|lg|title|row|item|list|table|chapter)>/g, '\n\n')
    .replace(/<[^>]*>/g, '')
    .replace(/\\nd\b\s*/g, '') // a stray USFM "\nd" marker in the KJV module
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (m, d) => String.fromCodePoint(+d));
  return s;
}

// ---- R serialization (XDR), enough for lazy-loaded character vectors -----
export function unserializeR(buf) {
  let p = 0;
  const refs = [];
  const int = () => {
    const v = buf.readInt32BE(p);
    p += 4;
    return v;
  };
  if (buf.toString('latin1', 0, 2) !== 'X\n') fail('R data: not XDR serialization');
  p = 2;
  const version = int();
  int();
  int();
  if (version === 3) p += 4 + buf.readInt32BE(p);
  const length = () => {
    const n = int();
    return n === -1 ? int() * 2 ** 32 + (int() >>> 0) : n;
  };
  function item() {
    const flags = int();
    const type = flags & 0xff;
    const hasAttr = flags & (1 << 9);
    const hasTag = flags & (1 << 10);
    const levels = flags >>> 12;
    const withAttr = (o) => {
      if (hasAttr) o.attr = item();
      return o;
    };
    switch (type) {
      case 254: // NILVALUE
        return null;
      case 241: case 242: case 250: case 251: case 252: case 253: // special environments/values
        return { special: type };
      case 255: { // REFSXP
        let i = flags >>> 8;
        if (i === 0) i = int();
        return refs[i - 1];
      }
      case 1: { // SYMSXP
        const sym = { sym: item() };
        refs.push(sym);
        return sym;
      }
      case 9: { // CHARSXP
        const n = int();
        if (n === -1) return null;
        const s = buf.toString(levels & 4 ? 'latin1' : 'utf8', p, p + n);
        p += n;
        return s;
      }
      case 2: case 6: case 239: case 240: { // pairlists and calls
        const node = { type };
        if (hasAttr) node.attr = item();
        if (hasTag) node.tag = item();
        node.car = item();
        node.cdr = item();
        return node;
      }
      case 10: case 13: { // logical, integer
        const n = length();
        const v = new Array(n);
        for (let i = 0; i < n; i++) v[i] = int();
        return withAttr({ type, v });
      }
      case 14: { // double
        const n = length();
        const v = new Array(n);
        for (let i = 0; i < n; i++, p += 8) v[i] = buf.readDoubleBE(p);
        return withAttr({ type, v });
      }
      case 16: case 19: case 20: { // character, list, expression
        const n = length();
        const v = new Array(n);
        for (let i = 0; i < n; i++) v[i] = item();
        return withAttr({ type, v });
      }
      default:
        return fail(`R data: unsupported object type ${type} at byte ${p - 4}`);
    }
  }
  return item();
}

const rNames = (o) => {
  for (let n = o && o.attr; n; n = n.cdr) if (n.tag && n.tag.sym === 'names') return n.car.v;
  return [];
};

// Objects of an R lazy-load database (DIR/Rdata.rdx + Rdata.rdb) as
// {name: value}. Each object is a chunk: its uncompressed size (4 bytes,
// big-endian), then, in databases made with compress = 1, a zlib stream; with
// compress = 3 (R's default for packages since 3.x: janeaustenr uses 1,
// modeldata 3) a type byte and the data: '0' stored, '1' zlib, 'Z' a raw
// LZMA2 stream (decoded by the xz tool, which Debian always has), '2' bzip2
// (unsupported: no package here needs it).
export function readRLazyLoad(dir) {
  const index = unserializeR(zlib.gunzipSync(fs.readFileSync(`${dir}/Rdata.rdx`)));
  const top = rNames(index);
  const vars = index.v[top.indexOf('variables')];
  const compressed = index.v[top.indexOf('compressed')];
  const mode = compressed && compressed.v[0];
  if (mode !== 1 && mode !== 3) fail(`${dir}: lazy-load compression ${mode} is not supported (only 1 and 3)`);
  const rdb = fs.readFileSync(`${dir}/Rdata.rdb`);
  const out = {};
  rNames(vars).forEach((name, i) => {
    const [off, len] = vars.v[i].v;
    const chunk = rdb.subarray(off, off + len);
    const size = chunk.readUInt32BE(0);
    let data;
    const type = mode === 1 ? '1' : String.fromCharCode(chunk[4]);
    const body = chunk.subarray(mode === 1 ? 4 : 5);
    if (type === '0') data = body;
    else if (type === '1') data = zlib.inflateSync(body);
    else if (type === 'Z') {
      // R writes LZMA2 with preset 9e: a 64 MiB dictionary at most.
      data = execFileSync('xz', ['--decompress', '--stdout', '--format=raw', '--lzma2=dict=64MiB'],
        { input: body, maxBuffer: size + 1024 });
    } else fail(`${dir}: object ${name} uses compression '${type}', which is not supported`);
    if (data.length !== size) fail(`${dir}: object ${name} has the wrong size (${data.length}, index says ${size})`);
    out[name] = unserializeR(data);
  });
  return out;
}

// The columns of an R data frame as {name: values}; factors become their
// level strings.
export function rDataFrame(df, what) {
  const names = rNames(df);
  if (df.type !== 19 || !names.length) fail(`${what}: not an R data frame`);
  const cols = {};
  names.forEach((n, i) => {
    const c = df.v[i];
    let levels = null;
    for (let a = c.attr; a; a = a.cdr) if (a.tag && a.tag.sym === 'levels') levels = a.car.v;
    cols[n] = levels ? c.v.map((x) => (x === -2147483648 ? null : levels[x - 1])) : c.v;
  });
  return cols;
}

// ---- dictd dictionaries (NAME.index + NAME.dict.dz, gzip-compatible) -----
// Returns [{headword, text}] in index order, each article once, the
// "00-database-*" metadata entries left out.
export function readDictd(base) {
  const dict = zlib.gunzipSync(fs.readFileSync(`${base}.dict.dz`));
  const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const num = (s) => [...s].reduce((v, c) => v * 64 + b64.indexOf(c), 0);
  const seen = new Set();
  const out = [];
  for (const line of fs.readFileSync(`${base}.index`, 'utf8').split('\n')) {
    if (!line) continue;
    const [headword, off, len] = line.split('\t');
    if (len === undefined) fail(`${base}.index: bad line ${JSON.stringify(line)}`);
    if (headword.startsWith('00-database') || headword.startsWith('00database')) continue;
    const k = `${off}:${len}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const o = num(off);
    out.push({ headword, offset: o, text: dict.toString('utf8', o, o + num(len)) });
  }
  return out;
}

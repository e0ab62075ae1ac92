// A small MIME reader for the SpamAssassin emails: the subject plus the
// readable body (text/plain parts, else text/html parts turned into text),
// with quoted-printable and base64 decoded. Enough for classification text;
// not a general mail parser.
import { cleanChars, decodeEntities } from './text.mjs';

// Headers (unfolded, names lower-cased; the first occurrence wins) and body.
function splitMessage(raw) {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const c = line.indexOf(':');
    if (c <= 0 || /^From /.test(line)) continue;
    const name = line.slice(0, c).trim().toLowerCase();
    if (!(name in headers)) headers[name] = line.slice(c + 1).trim();
  }
  return { headers, body };
}

function param(value, name) {
  const m = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))`, 'i').exec(value || '');
  return m ? (m[1] ?? m[2]) : '';
}

// The JSON holds the mail as a string of (mostly) byte-valued characters;
// encoded parts are ASCII, so latin1 recovers their bytes. Declared UTF-8 is
// read as UTF-8; undeclared text as UTF-8 when it is valid UTF-8; anything
// else as Windows-1252 (a superset of Latin-1 and what most 2002 mail meant).
// Written out rather than TextDecoder('windows-1252'): some Node versions
// decode that label as plain Latin-1, which would make the output depend on
// the Node version.
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';
const cp1252 = {
  decode(bytes) {
    let s = '';
    for (const b of bytes) s += b >= 0x80 && b < 0xa0 ? CP1252_HIGH[b - 0x80] : String.fromCharCode(b);
    return s;
  },
};
function decodeBytes(bytes, charset) {
  const cs = (charset || '').toLowerCase();
  if (cs === 'utf-8' || cs === 'utf8') return new TextDecoder('utf-8').decode(bytes);
  if (!cs || cs === 'us-ascii') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return cp1252.decode(bytes);
    }
  }
  return cp1252.decode(bytes);
}

function decodeTransfer(body, encoding, charset) {
  const enc = (encoding || '').toLowerCase().trim();
  if (enc === 'base64') {
    return decodeBytes(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), charset);
  }
  if (enc === 'quoted-printable') {
    const s = body.replace(/=\r?\n/g, '');
    const bytes = [];
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
        bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
        i += 2;
      } else {
        const c = s.charCodeAt(i);
        if (c < 256) bytes.push(c);
        else for (const b of Buffer.from(s[i], 'utf8')) bytes.push(b);
      }
    }
    return decodeBytes(Uint8Array.from(bytes), charset);
  }
  return body;
}

// RFC 2047 encoded words in a header ("=?iso-8859-1?Q?Hi=20there?=").
function decodeHeader(value) {
  return (value || '')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (m, cs, enc, text) => {
      if (enc.toLowerCase() === 'b') return decodeBytes(Buffer.from(text, 'base64'), cs);
      return decodeTransfer(text.replace(/_/g, ' '), 'quoted-printable', cs);
    });
}

export function htmlToText(html) {
  return decodeEntities(
    html
      .replace(/<!--[\s\S]*?-->/g, ' ')
      .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<(br|p|div|tr|li|h[1-6]|table|blockquote|hr)\b[^>]*>/gi, '\n')
      .replace(/<\/(p|div|tr|li|h[1-6]|table|blockquote)\s*>/gi, '\n')
      .replace(/<[^>]*>/g, ' '),
  );
}

// Readable text parts of a message, in order: [{type: 'plain'|'html', text}].
function textParts(raw, depth = 0) {
  const { headers, body } = splitMessage(raw);
  const ctype = (headers['content-type'] || 'text/plain').toLowerCase();
  const mime = ctype.split(';')[0].trim();
  if (mime.startsWith('multipart/') && depth < 8) {
    const boundary = param(headers['content-type'], 'boundary');
    if (!boundary) return [{ type: 'plain', text: body }];
    const parts = [];
    const delim = '--' + boundary;
    const lines = body.split(/\r?\n/);
    let cur = null;
    for (const line of lines) {
      if (line.startsWith(delim)) {
        if (cur) parts.push(cur.join('\n'));
        cur = line.startsWith(delim + '--') ? null : [];
        continue;
      }
      if (cur) cur.push(line);
    }
    if (cur) parts.push(cur.join('\n'));
    const sub = parts.map((p) => textParts(p, depth + 1));
    if (mime === 'multipart/alternative') {
      // One rendering: the plain one when there is one.
      const plain = sub.find((s) => s.some((x) => x.type === 'plain'));
      return plain || sub.find((s) => s.length) || [];
    }
    return sub.flat();
  }
  if (mime === 'message/rfc822' && depth < 8) return textParts(body, depth + 1);
  if (mime !== 'text/plain' && mime !== 'text/html' && mime !== 'text') return [];
  if (/^\s*attachment/i.test(headers['content-disposition'] || '') && mime !== 'text/plain') return [];
  const text = decodeTransfer(body, headers['content-transfer-encoding'], param(ctype, 'charset'));
  return [{ type: mime === 'text/html' ? 'html' : 'plain', text }];
}

// "Subject: ...\n\n<body>" with whitespace tidied (lines trimmed, runs of
// spaces collapsed, at most one blank line in a row). Empty when the mail has
// neither a subject nor readable text.
export function emailText(raw) {
  const { headers } = splitMessage(raw);
  let parts = textParts(raw);
  if (parts.some((p) => p.type === 'plain')) parts = parts.filter((p) => p.type === 'plain');
  let body = parts.map((p) => (p.type === 'html' ? htmlToText(p.text) : p.text)).join('\n\n');
  // HTML without a declared content type is common in spam.
  if (/<(html|body|table|font|p|br|a)\b/i.test(body) && /<\/(html|body|table|font|p|a)>/i.test(body)) body = htmlToText(body);
  const tidy = (s) =>
    cleanChars(s)
      .split('\n')
      .map((l) => l.replace(/[ \t]+/g, ' ').trim())
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim();
  const subject = tidy(decodeHeader(headers.subject || '')).replace(/\n/g, ' ');
  body = tidy(body);
  if (!body && !subject) return '';
  return subject ? `Subject: ${subject}\n\n${body}`.trim() : body;
}

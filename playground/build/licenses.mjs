// Writes the license texts of every package in the bundle next to it (read from esbuild's metafile).
import { readFileSync, writeFileSync, existsSync } from "node:fs";

const [metafile, out] = process.argv.slice(2);
const meta = JSON.parse(readFileSync(metafile, "utf8"));
const packages = new Set();
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/^node_modules\/((@[^/]+\/)?[^/]+)\//);
  if (match) packages.add(match[1]);
}
const parts = ["Third-party code in editor.js (bundled by playground/build/; versions in its package-lock.json).\n"];
for (const name of [...packages].sort()) {
  const pkg = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8"));
  const file = ["LICENSE", "LICENSE.md", "LICENSE.txt"].map((f) => `node_modules/${name}/${f}`).find(existsSync);
  parts.push(`\n==== ${name} ${pkg.version} (${pkg.license}) ====\n\n${file ? readFileSync(file, "utf8").trim() : pkg.license}\n`);
}
writeFileSync(out, parts.join(""));

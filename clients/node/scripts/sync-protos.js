#!/usr/bin/env node
// Copies the whospoke contracts (protos/whospoke/v1/*.proto at the repository root) into this
// package's protos/, so that the build, `npm pack` and the built dist/ need nothing outside the
// package. Outside the repository (a vendored copy) there is nothing to copy from and the
// bundled protos are used as they are.
//
//   node scripts/sync-protos.js                 copy from the repository (or note the bundled ones)
//   node scripts/sync-protos.js --from DIR      copy from DIR (a checkout's protos/ folder)
//   node scripts/sync-protos.js --check         exit 1 when the bundled copies differ
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { parseArgs } = require("node:util");

const PACKAGE = path.resolve(__dirname, "..");
const BUNDLED = path.join(PACKAGE, "protos", "whospoke", "v1");

function protosIn(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".proto")).sort() : [];
}

function differences(source) {
  const wanted = protosIn(source);
  const present = protosIn(BUNDLED);
  const changed = wanted.filter(
    (f) =>
      !present.includes(f) ||
      !fs.readFileSync(path.join(source, f)).equals(fs.readFileSync(path.join(BUNDLED, f))),
  );
  const stale = present.filter((f) => !wanted.includes(f));
  return { wanted, changed, stale };
}

function main() {
  const { values } = parseArgs({
    options: { from: { type: "string" }, check: { type: "boolean", default: false } },
  });
  const root = values.from ?? path.resolve(PACKAGE, "..", "..", "protos");
  const source = path.join(root, "whospoke", "v1");
  if (protosIn(source).length === 0) {
    if (values.from || values.check) {
      console.error(`sync-protos: no whospoke/v1/*.proto under ${root}`);
      process.exit(1);
    }
    if (protosIn(BUNDLED).length === 0) {
      console.error(`sync-protos: no bundled protos in ${BUNDLED} and no repository to copy from`);
      process.exit(1);
    }
    return; // a vendored or unpacked copy: build from the bundled protos
  }
  const { wanted, changed, stale } = differences(source);
  if (values.check) {
    if (changed.length || stale.length) {
      console.error(`sync-protos: out of date: ${[...changed, ...stale].join(", ")}`);
      console.error("run `npm run sync-protos` in clients/node (make node does it)");
      process.exit(1);
    }
    return;
  }
  fs.mkdirSync(BUNDLED, { recursive: true });
  for (const f of changed) fs.copyFileSync(path.join(source, f), path.join(BUNDLED, f));
  for (const f of stale) fs.rmSync(path.join(BUNDLED, f));
  if (changed.length || stale.length) {
    console.error(`sync-protos: ${changed.length} copied, ${stale.length} removed (${wanted.length} protos)`);
  }
}

main();

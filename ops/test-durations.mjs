// Refreshes test/durations.json, the per-file durations the test sequencer (vitest.config.ts)
// orders files by, longest first, from the JSON report of a full run:
//
//   npx vitest run --reporter=default --reporter=json --outputFile.json=/tmp/vitest.json
//   node ops/test-durations.mjs /tmp/vitest.json
//
// Only the order matters, so a run on a loaded machine does; re-run it when a file's length
// changes a lot (a new file not listed yet runs first, as Vitest runs files it has not timed).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const input = process.argv[2];
if (!input) {
  console.error('usage: node ops/test-durations.mjs <vitest JSON report>');
  process.exit(2);
}
const report = JSON.parse(readFileSync(input, 'utf8'));
const files = {};
for (const f of report.testResults) {
  files[relative(root, f.name).split('\\').join('/')] = Math.round((f.endTime - f.startTime) / 100) / 10;
}
const sorted = Object.fromEntries(Object.entries(files).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)));
const out = join(root, 'test', 'durations.json');
writeFileSync(out, JSON.stringify({ note: 'seconds per test file in a full run; written by ops/test-durations.mjs, read by the sequencer in vitest.config.ts', files: sorted }, null, 1) + '\n');
console.log(`wrote ${Object.keys(files).length} files to ${relative(root, out)}`);

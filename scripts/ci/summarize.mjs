#!/usr/bin/env node
// Sum one or more vitest JSON reports (`--reporter=json`) into a single line:
//
//     N passed, N failed
//
// Usage: node scripts/ci/summarize.mjs <report.json>[:<vitest exit code>] ...
//
// Counting rules:
//   - passed: tests whose status is "passed".
//   - failed: tests whose status is "failed", plus every test file that failed
//     without any failing test (it failed to load/collect, or a beforeAll/afterAll
//     hook threw).
//   - skipped and todo tests count as neither.
//   - A report that is missing or unreadable (vitest crashed, timed out, or never
//     got to write it) counts as 1 failure.
//   - If the vitest exit code is given, is non-zero, and the report shows no
//     failure, that counts as 1 failure: the JSON reporter does not record
//     unhandled errors/rejections, "no test files found", and the like.
//
// Diagnostics go to stderr; the summary is always the last line on stdout.
// The exit code is 1 when anything failed (or nothing was given), else 0.

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/** Split "path/to/report.json:1" into a path and an optional exit code. */
function parseArg(arg) {
  const match = /^(.*):(\d+)$/.exec(arg);
  if (match) return { file: match[1], exitCode: Number(match[2]) };
  return { file: arg, exitCode: undefined };
}

function note(message) {
  process.stderr.write(`summarize: ${message}\n`);
}

/** Count one vitest JSON report. Returns { passed, failed }. */
function countReport(file, exitCode) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const why = exitCode === undefined ? '' : ` (vitest exit code ${exitCode})`;
    note(`${file}: no usable report${why}: ${error.message}; counting 1 failure`);
    return { passed: 0, failed: 1 };
  }

  let passed = 0;
  let failed = 0;
  for (const testFile of report.testResults ?? []) {
    const tests = testFile.assertionResults ?? [];
    const failedTests = tests.filter((t) => t.status === 'failed').length;
    passed += tests.filter((t) => t.status === 'passed').length;
    failed += failedTests;
    if (testFile.status === 'failed' && failedTests === 0) {
      const name = relative(process.cwd(), testFile.name ?? '?');
      note(`${name}: test file failed outside any test: ${firstLine(testFile.message)}`);
      failed += 1;
    }
  }

  if (exitCode !== undefined && exitCode !== 0 && failed === 0) {
    note(
      `${file}: vitest exited with code ${exitCode} but no test failed ` +
        '(unhandled error? no test files?); counting 1 failure',
    );
    failed += 1;
  }
  return { passed, failed };
}

function firstLine(text) {
  const line = String(text ?? '').split('\n', 1)[0]?.trim();
  return line || '(no message)';
}

const args = process.argv.slice(2);
let passed = 0;
let failed = 0;
if (args.length === 0) {
  note('no report files given; counting 1 failure');
  failed = 1;
}
for (const arg of args) {
  const { file, exitCode } = parseArg(arg);
  const counts = countReport(file, exitCode);
  passed += counts.passed;
  failed += counts.failed;
}

process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exitCode = failed > 0 ? 1 : 0;

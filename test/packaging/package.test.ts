// The published tarball, checked by the tools a consumer's ecosystem trusts: arethetypeswrong
// (types resolve, and match the JavaScript, under node10, node16 from CJS and from ESM, and
// bundler resolution) and publint (package.json fields agree with the files). Both run on the
// tarball `npm pack` makes, so they see what npm would publish, not the work tree.
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Packed, ROOT, pack } from './packed.js';

let packed: Packed;
beforeAll(() => {
  packed = pack();
});
afterAll(() => packed?.cleanup());

interface AttwReport {
  problems: Record<string, { kind: string; entrypoint?: string; resolutionKind?: string }[]>;
  analysis: { entrypoints: Record<string, unknown> };
}

describe('the npm tarball', () => {
  it('holds the ESM build, the CommonJS build and its marker, the README and no source map or source', () => {
    const files = packed.files;
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json']));
    expect(files.filter((file) => file.endsWith('.map'))).toEqual([]);
    expect(files.filter((file) => !file.startsWith('dist/') && !['package.json', 'README.md'].includes(file))).toEqual([]);
  });

  it('arethetypeswrong finds no problem under any resolution, for every entry point', () => {
    const cli = realpathSync(join(ROOT, 'node_modules', '.bin', 'attw'));
    let out: string;
    try {
      out = execFileSync(process.execPath, [cli, packed.tarball, '--format', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, maxBuffer: 64 << 20 });
    } catch (error) {
      // attw exits 1 when it finds problems; its report is still on stdout.
      out = String((error as { stdout?: unknown }).stdout ?? '');
      if (!out.trimStart().startsWith('{')) throw error;
    }
    const report = JSON.parse(out) as AttwReport;
    const exported = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: object }).exports);
    expect(Object.keys(report.analysis.entrypoints).sort()).toEqual(exported.sort());
    expect(exported).toEqual(expect.arrayContaining(['.', './postgres']));
    expect(Object.values(report.problems).flat()).toEqual([]);
  });

  it('publint (strict: warnings count as errors) has nothing to say', async () => {
    const bytes = readFileSync(packed.tarball);
    const tarball = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const { messages, pkg } = await publint({ pack: { tarball }, strict: true });
    expect((pkg as { name?: string } | undefined)?.name).toBe('lifeguard');
    expect(messages.map((message) => `${message.type}: ${formatMessage(message, pkg) ?? message.code}`)).toEqual([]);
  });
});

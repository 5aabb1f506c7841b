// TypeScript projects that consume the packed tarball compile (tsc --noEmit, strict, and with
// skipLibCheck off so lifeguard's declarations are themselves checked): ESM under
// `module: nodenext`, `moduleResolution: bundler`, and a CommonJS package under
// `module: nodenext`. Each must also see the build its resolution promises: the CommonJS
// declarations (dist/cjs/) for require, the ESM ones for import.
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, type Packed, ROOT, install, pack } from './packed.js';

const CONSUMERS = join(FIXTURES, 'consumers');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let packed: Packed;
beforeAll(() => {
  packed = pack();
});
afterAll(() => packed?.cleanup());

const PROJECTS = [
  { name: 'esm-nodenext', build: 'dist/' },
  { name: 'bundler', build: 'dist/' },
  { name: 'cjs-nodenext', build: 'dist/cjs/' },
] as const;

describe('TypeScript consumers of the packed tarball', () => {
  it.concurrent.each(PROJECTS)('$name compiles, against the $build declarations', async ({ name, build }) => {
    const project = join(packed.dir, name);
    cpSync(join(CONSUMERS, name), project, { recursive: true });
    copyFileSync(join(CONSUMERS, 'usage.ts'), join(project, 'usage.ts'));
    install(packed, project, ['pg', '@types/pg', '@types/node']);

    const { stdout } = await promisify(execFile)(process.execPath, [TSC, '-p', project, '--listFiles'], { cwd: project, timeout: 60_000, maxBuffer: 16 << 20 }).catch(
      (error: { stdout?: string; message: string }) => {
        // tsc prints its diagnostics on stdout among the listed files: show them, not "Command failed".
        const diagnostics = (error.stdout ?? '').split('\n').filter((line) => !line.startsWith('/')).join('\n');
        throw new Error(`tsc failed for ${name}:\n${diagnostics || error.message}`);
      },
    );
    const lifeguardFiles = stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.includes('/node_modules/lifeguard/'))
      .map((line) => line.slice(line.indexOf('/node_modules/lifeguard/') + '/node_modules/lifeguard/'.length));
    expect(lifeguardFiles).toEqual(expect.arrayContaining([`${build}index.d.ts`, `${build}adapters/postgres/index.d.ts`, `${build}adapters/pg/index.d.ts`]));
    const otherBuild = build === 'dist/cjs/' ? (file: string) => !file.startsWith('dist/cjs/') : (file: string) => file.startsWith('dist/cjs/');
    expect(lifeguardFiles.filter(otherBuild), 'declarations of the other build').toEqual([]);
  });
});

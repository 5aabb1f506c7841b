// `prisma generate` for the Prisma tests and the Prisma example, run as a user runs it (the
// prisma CLI in node_modules, on a schema file), bounded in time.
//
// Prisma 7's clients need no engine binary (the query compiler is WebAssembly, shipped in the
// generated client), and generate itself runs none. The CLI still checks at start-up that the
// schema engine (for migrate) is installed, and downloads it when it is not; here nothing
// outside the npm registry is reachable and prisma's install scripts are off (package.json
// allowScripts). Then PRISMA_SCHEMA_ENGINE_BINARY names a program that is never run: generate
// does not call the schema engine, and /bin/false would only fail if it did.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const PRISMA_DIR = dirname(require.resolve('prisma/package.json'));
const ENGINES_DIR = dirname(require.resolve('@prisma/engines/package.json'));

function schemaEngineInstalled(): boolean {
  return existsSync(ENGINES_DIR) && require('node:fs').readdirSync(ENGINES_DIR).some((f: string) => f.startsWith('schema-engine'));
}

/** Run `prisma generate --schema <schema>`; rejects with the CLI's output when it fails. */
export function prismaGenerate(schema: string, timeoutMs = 60_000): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
  if (!schemaEngineInstalled() && env.PRISMA_SCHEMA_ENGINE_BINARY === undefined) env.PRISMA_SCHEMA_ENGINE_BINARY = '/bin/false';
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(PRISMA_DIR, 'build/index.js'), 'generate', '--schema', schema],
      { env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' },
      (error, stdout, stderr) => (error ? reject(new Error(`prisma generate --schema ${schema} failed: ${error.message}\n${stdout}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

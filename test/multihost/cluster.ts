// Three PostgreSQL instances from one binary set (Debian's postgresql package: initdb,
// pg_ctl, pg_basebackup): a primary and streaming standbys made with `pg_basebackup -R`, and
// the faults the multi-host tests need: crash, promote, rebuild as a standby of another node,
// fence read-only. As root the servers run as `postgres`. Loopback only; trust auth, since the
// tests are about roles, not passwords (MH9 uses a role that does not exist).
//
// No binaries → the suite fails loudly, unless LIFEGUARD_SKIP_MULTIHOST=1 says the user opts out.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../integration/providers.js';

const execFileAsync = promisify(execFile);

export const SKIP = process.env.LIFEGUARD_SKIP_MULTIHOST === '1';

/** The newest Debian PostgreSQL with pg_basebackup, or a loud error. */
export function findBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_basebackup')) && existsSync(join(root, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) {
    throw new Error('multi-host tests need PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql); set LIFEGUARD_SKIP_MULTIHOST=1 to skip them');
  }
  return join(root, versions[0]!, 'bin');
}

export interface Node {
  readonly name: string;
  port: number;
  dir: string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string): Promise<pg.QueryResult<R>>;
}

export class Cluster {
  readonly nodes: Node[] = [];
  #root = '';
  #bin = '';
  #as: { uid: number; gid: number } | undefined;

  static async start(standbys: number): Promise<Cluster> {
    const cluster = new Cluster();
    try {
      await cluster.#init(standbys);
    } catch (error) {
      await cluster.teardown();
      throw error;
    }
    return cluster;
  }

  async #init(standbys: number): Promise<void> {
    this.#bin = findBinaries();
    if (process.getuid?.() === 0) {
      await execFileAsync('id', ['-u', 'postgres']).catch(async () => {
        await execFileAsync('groupadd', ['postgres']).catch(() => {});
        await execFileAsync('useradd', ['-g', 'postgres', 'postgres']).catch(() => {});
      });
      const uid = Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim());
      this.#as = { uid, gid };
    }
    this.#root = await mkdtemp(join(tmpdir(), 'lifeguard-mh-'));
    await chmod(this.#root, 0o755);
    if (this.#as) await chown(this.#root, this.#as.uid, this.#as.gid);
    const primary = this.#node('pg1', await freePort());
    await this.#run('initdb', ['-D', primary.dir, '-U', 'postgres', '--auth=trust', '-N', '-E', 'UTF8', '--locale=C']);
    await appendFile(primary.dir + '/postgresql.conf', [
      "listen_addresses = '127.0.0.1'", 'wal_level = replica', 'max_wal_senders = 10', 'hot_standby = on', 'fsync = off',
      'full_page_writes = off', 'synchronous_commit = off', 'max_connections = 60', 'shared_buffers = 16MB', 'wal_keep_size = 64MB', '',
    ].join('\n'));
    await writeFile(primary.dir + '/pg_hba.conf', 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n');
    if (this.#as) await chown(primary.dir + '/pg_hba.conf', this.#as.uid, this.#as.gid);
    await this.#startNode(primary);
    this.nodes.push(primary);
    for (let i = 0; i < standbys; i++) {
      const node = this.#node(`pg${i + 2}`, await freePort());
      await this.#baseBackup(node, primary);
      this.nodes.push(node);
    }
    await this.waitReplicas(primary, standbys);
  }

  #node(name: string, port: number): Node {
    const node: Node = {
      name,
      port,
      dir: join(this.#root, name),
      query: async (text) => {
        const client = new pg.Client({ host: '127.0.0.1', port: node.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 3000 });
        client.on('error', () => {});
        await client.connect();
        try {
          return await client.query(text);
        } finally {
          await client.end().catch(() => {});
        }
      },
    };
    return node;
  }

  async #run(tool: string, args: string[], timeoutMs = 60_000): Promise<string> {
    const { stdout } = await execFileAsync(join(this.#bin, tool), args, { timeout: timeoutMs, ...(this.#as ?? {}), cwd: this.#root, env: { ...process.env, PGHOST: undefined, PGPORT: undefined, LANG: 'C' } as NodeJS.ProcessEnv });
    return stdout;
  }

  async #startNode(node: Node): Promise<void> {
    await this.#run('pg_ctl', ['-D', node.dir, '-l', `${node.dir}.log`, '-w', '-t', '30', '-o', `-p ${node.port} -k ${this.#root}`, 'start']);
  }

  async #baseBackup(node: Node, from: Node): Promise<void> {
    await rm(node.dir, { recursive: true, force: true });
    await this.#run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(from.port), '-U', 'postgres', '-D', node.dir, '-R', '-X', 'stream', '-c', 'fast']);
    await this.#startNode(node);
  }

  /** Until `primary` has `count` streaming standbys. */
  async waitReplicas(primary: Node, count: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const { rows } = await primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming'");
      if (Number(rows[0]!.n) >= count) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${primary.name}: ${count} standbys did not start streaming within 20 s`);
  }

  async crash(node: Node): Promise<void> {
    await this.#run('pg_ctl', ['-D', node.dir, '-m', 'immediate', 'stop']).catch(() => {});
  }

  async stop(node: Node): Promise<void> {
    await this.#run('pg_ctl', ['-D', node.dir, '-m', 'fast', '-w', 'stop']).catch(() => {});
  }

  async start(node: Node): Promise<void> {
    await this.#startNode(node);
  }

  async promote(node: Node): Promise<void> {
    await this.#run('pg_ctl', ['-D', node.dir, '-w', 'promote']);
  }

  /** The node becomes a fresh standby of `primary` on its old address. */
  async rebuildAsStandby(node: Node, primary: Node): Promise<void> {
    await this.crash(node);
    await this.#baseBackup(node, primary);
  }

  async fence(node: Node, on: boolean): Promise<void> {
    await node.query(`ALTER SYSTEM SET default_transaction_read_only = ${on ? 'on' : 'off'}`);
    await node.query('SELECT pg_reload_conf()');
  }

  async teardown(): Promise<void> {
    for (const node of this.nodes) await this.crash(node);
    if (this.#root !== '') await rm(this.#root, { recursive: true, force: true });
  }
}

/** A TCP forwarder that counts connections (how many connects lifeguard made to a host). */
export class CountingProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  connections = 0;
  port = 0;
  /** Accept and hold connections without forwarding (a blackhole). */
  blackhole = false;

  constructor(public target: number) {
    this.#server = net.createServer((socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
      if (this.blackhole) return;
      const upstream = net.connect(this.target, '127.0.0.1');
      this.#sockets.add(upstream);
      upstream.on('close', () => {
        this.#sockets.delete(upstream);
        socket.destroy();
      });
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Which port a psql (libpq) connection with this conninfo lands on, or 'error'. */
export async function libpqChoice(conninfo: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('psql', [conninfo, '-XAtc', 'SELECT inet_server_port()'], { timeout: 15_000, env: { ...process.env, PGCONNECT_TIMEOUT: '3' } });
    return stdout.trim();
  } catch {
    return 'error';
  }
}

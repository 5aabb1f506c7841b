/**
 * Multi-host configuration, read as libpq reads it: `hosts`, multi-host URLs
 * (`h1:5432,h2,[::1]:5434`, `?host=h1,h2&port=…`), `PGHOST`/`PGPORT` lists, and the
 * `target_session_attrs` / `load_balance_hosts` / `connect_timeout` settings. pg's own
 * connection-string parser only ever sees one host: the URL is rewritten before it gets it.
 */
import { InvalidPoolOptionError } from '../../index.js';

/** libpq's target_session_attrs: which kind of server a new connection must reach. */
export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby';
/** libpq's load_balance_hosts: 'random' shuffles the host list for every new connection. */
export type LoadBalanceHosts = 'disable' | 'random';
/** What a 25006 (read-only transaction) does: retire every connection to that host, or only the one. */
export type OnReadOnly = 'invalidate-host' | 'destroy';

/** One server of {@link MultiHostConfig.hosts} as an object. */
export interface HostEntry {
  /** A host name, an IP address or a Unix socket directory. */
  readonly host: string;
  /** @default 5432 */
  readonly port?: number;
}

export const TARGET_SESSION_ATTRS: readonly TargetSessionAttrs[] = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'];
const LOAD_BALANCE: readonly LoadBalanceHosts[] = ['disable', 'random'];

/** The options a user gives for multiple hosts (part of `PostgresPoolConfig`). */
export interface MultiHostConfig {
  /** Servers to try, in order. Overrides `host`/`port`. Strings are 'host', 'host:port', '[v6]:port', or a Unix socket directory. */
  readonly hosts?: ReadonlyArray<string | HostEntry>;
  /** libpq's target_session_attrs: which server a new connection must reach. @default 'any' */
  readonly targetSessionAttrs?: TargetSessionAttrs;
  /** libpq's load_balance_hosts: 'random' shuffles the host list for every create. @default 'disable' */
  readonly loadBalanceHosts?: LoadBalanceHosts;
  /** Bound on one host's connect, authentication and role check inside a create. @default createTimeoutMs / number of hosts */
  readonly hostConnectTimeoutMs?: number;
  /** How long a host's observed failure or wrong role is trusted before it is tried in list order again. @default 10000 */
  readonly hostRecheckMs?: number;
  /** What a 25006 (read-only transaction) does: retire every connection to that host, or only the one. @default 'invalidate-host' for read-write/primary, else 'destroy' */
  readonly onReadOnly?: OnReadOnly;
}

export const MULTI_HOST_KEYS: ReadonlySet<string> = new Set(['hosts', 'targetSessionAttrs', 'loadBalanceHosts', 'hostConnectTimeoutMs', 'hostRecheckMs', 'onReadOnly']);

export interface HostAddress {
  readonly host: string;
  readonly port: number;
}

/** What the adapter's host walk runs on. `hosts` has one entry for a single-host pool with a target. */
export interface ResolvedHosts {
  readonly hosts: readonly HostAddress[];
  readonly targetSessionAttrs: TargetSessionAttrs;
  readonly loadBalanceHosts: LoadBalanceHosts;
  readonly hostConnectTimeoutMs: number;
  readonly hostRecheckMs: number;
  readonly onReadOnly: OnReadOnly;
}

/** What a URL said about hosts and targets, and the URL pg's parser may see. */
export interface UrlHosts {
  /** The URL with one host and without the multi-host settings. */
  readonly url: string;
  readonly hosts?: HostAddress[];
  readonly targetSessionAttrs?: string;
  readonly loadBalanceHosts?: string;
  readonly connectTimeoutMs?: number;
}

const DEFAULT_PORT = 5432;
const MULTI_HOST_PARAMS = new Set(['target_session_attrs', 'load_balance_hosts', 'connect_timeout']);

/** Never echoes the value: a host list from a URL may sit next to a password. */
function bad(option: string, what: string): never {
  throw new InvalidPoolOptionError(option, `Expected ${what} (value not shown: it may hold a password)`);
}

function parsePort(text: string, option: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65_535) bad(option, `each port to be an integer in [1, 65535]`);
  return Number(text);
}

/** One 'host', 'host:port', '[v6]', '[v6]:port' or socket directory; '' is libpq's default host. */
function parseHostToken(token: string, option: string): { host: string; port?: number } {
  if (token.startsWith('/')) return { host: token };
  if (token.startsWith('[')) {
    const close = token.indexOf(']');
    if (close < 0) bad(option, "an IPv6 address in brackets ('[::1]:5432')");
    const rest = token.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) bad(option, "an IPv6 address in brackets ('[::1]:5432')");
    return { host: token.slice(1, close), ...(rest === '' ? {} : { port: parsePort(rest.slice(1), option) }) };
  }
  const colon = token.lastIndexOf(':');
  // A bare IPv6 address (several colons, no brackets) is a host: only brackets give it a port.
  if (colon >= 0 && token.indexOf(':') === colon) return { host: token.slice(0, colon) || 'localhost', port: parsePort(token.slice(colon + 1), option) };
  return { host: token === '' ? 'localhost' : token };
}

/**
 * libpq's pairing of a host list with a port list: no port → 5432 (or a host's own), one port
 * for every host, otherwise as many ports as hosts ('' in the list is the default port).
 */
export function pairHostsAndPorts(hostList: string, portList: string | undefined, option: string): HostAddress[] {
  const hosts = hostList.split(',').map((token) => parseHostToken(decodeURIComponent(token.trim()), option));
  const ports = portList === undefined || portList === '' ? [] : portList.split(',').map((p) => p.trim());
  if (ports.length > 1 && ports.length !== hosts.length) bad(option, `as many ports as hosts, or one port for all (got ${ports.length} ports for ${hosts.length} hosts)`);
  return hosts.map((h, i) => {
    const given = ports.length === 0 ? '' : ports.length === 1 ? ports[0]! : ports[i]!;
    return { host: h.host, port: given !== '' ? parsePort(given, option) : (h.port ?? DEFAULT_PORT) };
  });
}

/**
 * Take the hosts and multi-host settings out of a postgres:// URL. Only URLs that list several
 * hosts or carry one of those settings are rewritten; others pass unchanged.
 */
export function extractUrlHosts(url: string): UrlHosts {
  const scheme = /^postgres(ql)?:\/\//i.exec(url);
  if (scheme === null) return { url };
  const rest = url.slice(scheme[0].length);
  const pathAt = rest.search(/[/?#]/);
  const authorityEnd = pathAt < 0 ? rest.length : pathAt;
  const at = rest.lastIndexOf('@', authorityEnd);
  const userinfo = at < 0 ? '' : rest.slice(0, at + 1);
  const hostPart = rest.slice(at + 1, authorityEnd);
  let tail = rest.slice(authorityEnd);
  const queryAt = tail.indexOf('?');
  const hashAt = tail.indexOf('#');
  const path = queryAt < 0 ? tail : tail.slice(0, queryAt);
  const query = queryAt < 0 ? '' : tail.slice(queryAt + 1, hashAt > queryAt ? hashAt : undefined);
  const kept: string[] = [];
  const settings: Record<string, string> = {};
  let queryHost: string | undefined;
  let queryPort: string | undefined;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, ' '));
    if (MULTI_HOST_PARAMS.has(key)) settings[key] = value;
    else if (key === 'host') queryHost = value;
    else if (key === 'port') queryPort = value;
    kept.push(pair);
  }
  const authorityMulti = hostPart.includes(',');
  const queryMulti = (queryHost?.includes(',') ?? false) || (queryPort?.includes(',') ?? false);
  const hasSettings = Object.keys(settings).length > 0;
  if (!authorityMulti && !queryMulti && !hasSettings) return { url };
  let hosts: HostAddress[] | undefined;
  if (authorityMulti || queryMulti) {
    // libpq: ?host= and ?port= override the authority's.
    if (queryHost !== undefined) hosts = pairHostsAndPorts(queryHost, queryPort, 'connectionString');
    else {
      const fromAuthority = pairHostsAndPorts(hostPart, undefined, 'connectionString');
      hosts = queryPort === undefined ? fromAuthority : pairHostsAndPorts(hostPart.split(',').map((t) => t.replace(/:\d*$/, '')).join(','), queryPort, 'connectionString');
    }
  }
  const keptQuery = kept.filter((pair) => {
    const key = decodeURIComponent(pair.split('=')[0]!);
    if (MULTI_HOST_PARAMS.has(key)) return false;
    return hosts === undefined || (key !== 'host' && key !== 'port');
  });
  // pg's parser gets the first host, so every other field it reads stays where it was.
  let single = hostPart;
  if (hosts !== undefined) {
    const first = hosts[0]!;
    single = first.host.startsWith('/') ? '' : `${first.host.includes(':') ? `[${first.host}]` : encodeURIComponent(first.host)}:${first.port}`;
    if (first.host.startsWith('/')) keptQuery.push(`host=${encodeURIComponent(first.host)}`);
  }
  tail = path + (keptQuery.length > 0 ? `?${keptQuery.join('&')}` : '');
  let connectTimeoutMs: number | undefined;
  if (settings.connect_timeout !== undefined) {
    if (!/^\d{1,9}$/.test(settings.connect_timeout)) bad('connectionString', 'the `connect_timeout` parameter of `connectionString` to be a whole number of seconds');
    const seconds = Number(settings.connect_timeout);
    // libpq: 0 means no bound; 1 s is read as 2 s (a 1 s timer could fire almost at once).
    connectTimeoutMs = seconds === 0 ? undefined : Math.max(2, seconds) * 1000;
  }
  return {
    url: `${scheme[0]}${userinfo}${single}${tail}`,
    ...(hosts === undefined ? {} : { hosts }),
    ...(settings.target_session_attrs === undefined ? {} : { targetSessionAttrs: settings.target_session_attrs }),
    ...(settings.load_balance_hosts === undefined ? {} : { loadBalanceHosts: settings.load_balance_hosts }),
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
  };
}

function explicitHosts(hosts: unknown): HostAddress[] {
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new InvalidPoolOptionError('hosts', 'Expected `hosts` to be a non-empty array of host strings or { host, port } objects');
  }
  return hosts.map((entry: unknown) => {
    if (typeof entry === 'string') {
      if (entry.includes(',') || entry.includes('@') || entry.includes('\0') || /:\/\//.test(entry)) {
        bad('hosts', 'each `hosts` entry to be one host name, IP address or socket directory');
      }
      const parsed = parseHostToken(entry, 'hosts');
      return { host: parsed.host, port: parsed.port ?? DEFAULT_PORT };
    }
    if (typeof entry === 'object' && entry !== null && typeof (entry as { host?: unknown }).host === 'string') {
      const { host, port } = entry as { host: string; port?: unknown };
      if (host === '' || host.includes(',') || host.includes('@') || host.includes('\0')) bad('hosts', 'each `hosts` entry to be one host name, IP address or socket directory');
      if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65_535)) {
        throw InvalidPoolOptionError.expected('hosts', 'each port to be an integer in [1, 65535]', port);
      }
      return { host, port: (port as number | undefined) ?? DEFAULT_PORT };
    }
    throw new InvalidPoolOptionError('hosts', 'Expected each `hosts` entry to be a string or a { host, port } object');
  });
}

function checkChoice<T extends string>(option: string, value: unknown, choices: readonly T[], fromUrl: string | undefined): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  const where = fromUrl === undefined ? `\`${option}\`` : fromUrl;
  // Values from a URL or the environment are not shown; a stray value given explicitly is.
  if (fromUrl !== undefined) throw new InvalidPoolOptionError(option, `Expected ${where} to be one of ${choices.map((c) => `'${c}'`).join(', ')} (value not shown)`);
  throw InvalidPoolOptionError.expected(option, `one of ${choices.map((c) => `'${c}'`).join(', ')}`, value);
}

/**
 * The first given of [explicit, URL, environment] (precedence explicit > URL > env), checked;
 * `fallback` when none is. Each source carries its label for the message (undefined: explicit).
 */
function layeredChoice<T extends string>(option: string, choices: readonly T[], fallback: T, sources: ReadonlyArray<readonly [unknown, string | undefined]>): T {
  const given = sources.find(([value]) => value !== undefined);
  return given === undefined ? fallback : checkChoice(option, given[0], choices, given[1]);
}

function checkMs(option: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0 && value <= 2_147_483_647)) throw InvalidPoolOptionError.expected(option, 'a number of milliseconds > 0 and <= 2147483647', value);
  return value;
}

/**
 * The host walk's configuration, or undefined for a pool that connects as today (one host,
 * target 'any'). Precedence explicit > URL > environment > defaults, field by field.
 */
export function resolveHosts(
  config: MultiHostConfig & { host?: unknown; port?: unknown },
  url: UrlHosts | undefined,
  urlHasHost: boolean,
  createTimeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedHosts | undefined {
  if (config.hosts !== undefined && config.host !== undefined) {
    throw new InvalidPoolOptionError('hosts', 'Expected either `hosts` or `host`, not both: `hosts` lists every server to try');
  }
  let hosts: HostAddress[] | undefined;
  if (config.hosts !== undefined) hosts = explicitHosts(config.hosts);
  else if (config.host === undefined) {
    if (url?.hosts !== undefined) hosts = url.hosts;
    else if (!urlHasHost && env.PGHOST !== undefined && (env.PGHOST.includes(',') || (env.PGPORT ?? '').includes(','))) {
      hosts = pairHostsAndPorts(env.PGHOST, config.port === undefined ? env.PGPORT : String(config.port), 'PGHOST');
    }
  }
  const targetSessionAttrs = layeredChoice('targetSessionAttrs', TARGET_SESSION_ATTRS, 'any', [
    [config.targetSessionAttrs, undefined],
    [url?.targetSessionAttrs, 'the `target_session_attrs` parameter of `connectionString`'],
    [env.PGTARGETSESSIONATTRS || undefined, 'PGTARGETSESSIONATTRS'],
  ]);
  const loadBalanceHosts = layeredChoice('loadBalanceHosts', LOAD_BALANCE, 'disable', [
    [config.loadBalanceHosts, undefined],
    [url?.loadBalanceHosts, 'the `load_balance_hosts` parameter of `connectionString`'],
    [env.PGLOADBALANCEHOSTS || undefined, 'PGLOADBALANCEHOSTS'],
  ]);
  const onReadOnly = config.onReadOnly === undefined
    ? (targetSessionAttrs === 'read-write' || targetSessionAttrs === 'primary' ? 'invalidate-host' : 'destroy')
    : checkChoice<OnReadOnly>('onReadOnly', config.onReadOnly, ['invalidate-host', 'destroy'], undefined);
  const hostConnectTimeoutMs = checkMs('hostConnectTimeoutMs', config.hostConnectTimeoutMs) ?? url?.connectTimeoutMs;
  const hostRecheckMs = checkMs('hostRecheckMs', config.hostRecheckMs) ?? 10_000;
  if (hosts === undefined && targetSessionAttrs === 'any') return undefined;
  const list = hosts ?? [];
  return {
    hosts: list,
    targetSessionAttrs,
    loadBalanceHosts,
    hostConnectTimeoutMs: hostConnectTimeoutMs ?? Math.max(1, createTimeoutMs / Math.max(1, list.length)),
    hostRecheckMs,
    onReadOnly,
  };
}

// Just enough of a PostgreSQL server for pg's `stream` option, so the postgres adapter's release
// and error paths can be checked without a database (test/unit/misuse-postgres.test.ts,
// misuse-error-handlers.test.ts).
import { Duplex } from 'node:stream';

/**
 * Just enough of a PostgreSQL server, behind pg's `stream` option, to check the adapter's
 * release policy without a database: trust auth, simple queries, transaction status.
 * BEGIN -> 'T', COMMIT/ROLLBACK -> 'I', any query containing FAIL -> an error ('E' inside a
 * transaction); anything else completes.
 */
export class FakePgStream extends Duplex {
  static readonly all: FakePgStream[] = [];
  readonly queries: string[] = [];
  status: 'I' | 'T' | 'E' = 'I';
  #buffer = Buffer.alloc(0);
  #started = false;

  constructor() {
    super();
    FakePgStream.all.push(this);
  }

  connect(): this {
    setImmediate(() => this.emit('connect'));
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (!this.#started) {
        if (this.#buffer.length < 4 || this.#buffer.length < this.#buffer.readInt32BE(0)) break;
        this.#buffer = this.#buffer.subarray(this.#buffer.readInt32BE(0));
        this.#started = true;
        this.#send('R', int32(0));
        this.#ready();
        continue;
      }
      if (this.#buffer.length < 5 || this.#buffer.length < 1 + this.#buffer.readInt32BE(1)) break;
      const type = String.fromCharCode(this.#buffer[0]!);
      const body = this.#buffer.subarray(5, 1 + this.#buffer.readInt32BE(1));
      this.#buffer = this.#buffer.subarray(1 + this.#buffer.readInt32BE(1));
      if (type === 'X') {
        this.push(null);
      } else if (type === 'Q') {
        this.#query(body.subarray(0, body.length - 1).toString('utf8'));
      }
    }
    callback();
  }

  #query(sql: string): void {
    this.queries.push(sql);
    if (/FAIL/.test(sql) || this.status === 'E') {
      const aborted = this.status === 'E';
      if (this.status === 'T') this.status = 'E';
      const fields = aborted ? ['SERROR', 'C25P02', 'Mcurrent transaction is aborted'] : ['SERROR', 'C22012', 'Mdivision by zero'];
      if (/^ROLLBACK/i.test(sql)) {
        this.status = 'I';
        this.#send('C', cstring('ROLLBACK'));
      } else {
        this.#send('E', Buffer.concat([...fields.map(cstring), Buffer.from([0])]));
      }
    } else if (/^BEGIN/i.test(sql)) {
      this.status = 'T';
      this.#send('C', cstring('BEGIN'));
    } else if (/^(COMMIT|ROLLBACK)/i.test(sql)) {
      this.status = 'I';
      this.#send('C', cstring(sql.split(' ')[0]!.toUpperCase()));
    } else {
      this.#send('C', cstring('SELECT 0'));
    }
    this.#ready();
  }

  #ready(): void {
    this.#send('Z', Buffer.from(this.status));
  }

  #send(type: string, body: Buffer): void {
    this.push(Buffer.concat([Buffer.from(type), int32(body.length + 4), body]));
  }
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}


/**
 * Redis connections from a URL: `redis://[user][:password@]host[:port][/db]`
 * and `rediss://…` (TLS). The URL is parsed here rather than handed to
 * ioredis so that TLS, the password and the database are explicit, and so
 * errors can name the server without ever showing the password.
 */
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';

/** The environment variable `--redis` falls back to, so a password need not appear in `ps`. */
export const REDIS_URL_ENV = 'TRANSFERLAB_REDIS_URL';

/** The URL with its password replaced by `***`, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** The `--redis` value, else `$TRANSFERLAB_REDIS_URL`; an error naming both when neither is set. */
export function requireRedisUrl(value: string | undefined, command: string): string {
  const url = value ?? process.env[REDIS_URL_ENV];
  if (!url)
    throw new Error(
      `${command}: give the Redis server, --redis redis://HOST:PORT (or set ${REDIS_URL_ENV}, which keeps a password off the command line)`,
    );
  return url;
}

/**
 * ioredis options for a Redis URL. `rediss://` turns TLS on (the server's
 * name is checked against its certificate; a private CA is trusted through
 * NODE_EXTRA_CA_CERTS, or `extra.tls`). `extra` is merged last.
 */
export function redisOptions(url: string, extra: Partial<RedisOptions> = {}): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(
      `not a Redis URL: "${redactRedisUrl(url)}" (expected redis://[:password@]host:port[/db] or rediss://… for TLS)`,
    );
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(
      `not a Redis URL: "${redactRedisUrl(url)}" — the scheme must be redis:// or rediss:// (TLS), not ${u.protocol}//`,
    );
  if (u.search || u.hash)
    throw new Error(
      `Redis URL "${redactRedisUrl(url)}": query parameters and fragments are not supported`,
    );
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = u.port === '' ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path))
    throw new Error(
      `Redis URL "${redactRedisUrl(url)}": the path must be a database number (/0, /1, …), got "/${path}"`,
    );
  const options: RedisOptions = { host, port, db: path === '' ? 0 : Number(path) };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  // Certificates name hosts, not addresses: SNI only for a host name.
  if (u.protocol === 'rediss:') options.tls = isIP(host) ? {} : { servername: host };
  return {
    ...options,
    ...extra,
    ...(extra.tls && options.tls ? { tls: { ...options.tls, ...extra.tls } } : {}),
  };
}

/** A connection error in words a user can act on; the URL shown without its password. */
export function explainRedisError(url: string, err: unknown): Error {
  const message = (err as Error)?.message ?? String(err);
  const where = redactRedisUrl(url);
  if (/NOAUTH/i.test(message))
    return new Error(
      `Redis at ${where} requires a password: give it in the URL, redis://:PASSWORD@HOST:PORT (or in ${REDIS_URL_ENV})`,
    );
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message))
    return new Error(`Redis at ${where} refused the password (or user) given in the URL`);
  if (/ECONNREFUSED/.test(message))
    return new Error(
      `cannot reach Redis at ${where}: connection refused (is redis-server running there, and listening on an address this host can reach?)`,
    );
  if (/ENOTFOUND|EAI_AGAIN/.test(message))
    return new Error(`cannot reach Redis at ${where}: unknown host (${message})`);
  return new Error(`Redis at ${where}: ${message}`);
}

/**
 * Open a connection and check it with PING: a wrong address, a missing or
 * wrong password, or a TLS mismatch fail here, with a clear message, rather
 * than as retries forever. `worker`: the connection a BullMQ worker needs
 * (`maxRetriesPerRequest: null`; reconnects as long as it takes, so a worker
 * outlives a Redis restart).
 */
export async function connectRedis(
  url: string,
  opts: { worker?: boolean; extra?: Partial<RedisOptions>; timeoutMs?: number } = {},
): Promise<Redis> {
  const base = redisOptions(url, opts.extra);
  // First a probe that gives up at once: ioredis would otherwise retry a refused connection forever.
  const probe = new Redis({
    ...base,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: opts.timeoutMs ?? 10_000,
  });
  // ioredis rejects with "Connection is closed"; the cause came as an error event.
  let cause: unknown;
  probe.on('error', (err) => {
    cause ??= err;
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    throw explainRedisError(url, cause ?? err);
  } finally {
    probe.disconnect();
  }
  const client = new Redis({
    ...base,
    lazyConnect: true,
    maxRetriesPerRequest: opts.worker ? null : 3,
    ...(opts.worker ? {} : { retryStrategy: (times: number) => (times > 5 ? null : 200 * times) }),
  });
  // Errors surface through the commands that fail; a lost connection is retried.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw explainRedisError(url, err);
  }
  return client;
}

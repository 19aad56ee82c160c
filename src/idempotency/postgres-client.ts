/**
 * PostgresQueryResult is the part of a `pg` query result the store reads.
 * The Postgres store is typed structurally, so connect-mesh's published
 * types name no `pg` type and consumers without `pg` type-check cleanly.
 */
// biome-ignore lint/suspicious/noExplicitAny: rows are whatever the query selects, as in pg.
export interface PostgresQueryResult<R = any> {
  readonly rows: R[];
  readonly rowCount: number | null;
  /** command is the SQL command tag (`COMMIT`, `ROLLBACK`, ...). */
  readonly command: string;
}

/** PostgresQueryable is anything that runs a query: a `pg` Pool or PoolClient. */
export interface PostgresQueryable {
  // biome-ignore lint/suspicious/noExplicitAny: as in pg, the caller names the row type.
  query<R = any>(text: string, values?: unknown[]): Promise<PostgresQueryResult<R>>;
}

/** PostgresPoolClient is a connection checked out of a pool (`pg.PoolClient`). */
export interface PostgresPoolClient extends PostgresQueryable {
  release(destroy?: boolean | Error): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
}

/** PostgresPool is a connection pool (`pg.Pool`). */
export interface PostgresPool extends PostgresQueryable {
  connect(): Promise<PostgresPoolClient>;
  end(): Promise<void>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

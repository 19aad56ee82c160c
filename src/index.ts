// connect-mesh public API. Symbols for end users first; symbols for
// integrators (custom resolvers, interceptors reading mesh state) below.

// Admin server and live dashboard (serveAdmin), fed by transport.tap() / server.tap().
export {
  ADMIN_DEFAULTS,
  type AdminServer,
  type AdminTransport,
  type RunningAdmin,
  type ServeAdminOptions,
  serveAdmin,
} from "./admin/admin-server.js";
export {
  ADMIN_STATS_DEFAULTS,
  type AdminStatsOptions,
  type AdminStatsView,
  type BreakerView,
  type EjectionView,
  type MethodStats,
  type RetryTotals,
  type SecondPoint,
  type TimelineEntry,
} from "./admin/admin-stats.js";
// State snapshots (transport.snapshot(), server.snapshot()) and channelz.
export {
  CHANNELZ_MAX_RESULTS,
  type ChannelzOptions,
  channelzRoutes,
} from "./admin/channelz-service.js";
// Authorization policy (issue 16 §2).
export {
  AUTHORIZATION_FILE_DEFAULTS,
  type AuthorizationFileEvent,
  type AuthorizationFileSource,
  type AuthorizationFileSourceOptions,
  AuthorizationPolicyFileError,
  createAuthorizationFileSource,
} from "./authz/authorization-file.js";
export type {
  HeaderCondition,
  HeaderReader,
} from "./authz/authorization-match.js";
export {
  AUTHORIZATION_POLICY_DEFAULTS,
  type AuthorizationAction,
  type AuthorizationDecision,
  type AuthorizationDefault,
  type AuthorizationPolicy,
  type AuthorizationPolicyOptions,
  type AuthorizationRequest,
  type AuthorizationRule,
  createAuthorizationPolicy,
  isAuthorizationPolicy,
} from "./authz/authorization-policy.js";
export {
  type AuthorizationHolder,
  type AuthorizationOption,
  type AuthorizationSource,
  createAuthorizationHolder,
} from "./authz/authorization-source.js";
export {
  type AuthorizationDecisionEvent,
  type AuthorizationInterceptorOptions,
  type AuthorizationServerOption,
  createAuthorizationInterceptor,
} from "./authz/authz-interceptor.js";
// Rate limits (local and Redis) and load-aware balancing (issue 17 §3-4).
export {
  LOAD_PENALTY_DEFAULTS,
  type LoadPenalty,
  type LoadPenaltyOptions,
} from "./balancer/load-penalty.js";
export type { TrafficEvent } from "./balancer/traffic-events.js";
export type {
  HeaderRoute,
  TrafficPolicy,
  TrafficSubset,
} from "./balancer/traffic-policy.js";
export {
  ZONE_AWARE_DEFAULTS,
  type ZoneAwareOptions,
  type ZoneRoutingMode,
} from "./balancer/zone-aware.js";
export {
  type BreakerEvent,
  type BreakerOptions,
  breakerStateKey,
} from "./breaker/breaker-interceptor.js";
export { BreakerOpenError } from "./breaker/breaker-open-error.js";
export {
  CIRCUIT_BREAKER_DEFAULTS,
  type CircuitBreakerOptions,
  type CircuitState,
} from "./breaker/circuit-breaker.js";
export {
  FAILURE_ACCRUAL_DEFAULTS,
  type FailureAccrualOptions,
} from "./breaker/failure-accrual.js";
export { BACKOFF_DEFAULTS, type BackoffOptions } from "./call/backoff.js";
export { type CallScope, currentCallScope, runOutsideCallScope } from "./call/call-scope.js";
export { CRITICALITY_HEADER, MIRROR_HEADER } from "./call/headers.js";
export type { MeshTapObserver, TappedCall } from "./call/tapped-call.js";
export {
  createMeshTransport,
  type MeshTransport,
  type MeshTransportEvent,
  type MeshTransportOptions,
} from "./client/create-mesh-transport.js";
export {
  createFaultInjector,
  FAULT_HEADER,
  type FaultCodeRate,
  type FaultConfig,
  type FaultConfigUpdate,
  type FaultCounts,
  type FaultInjector,
  type FaultInjectorOptions,
  type FaultRule,
} from "./faults/fault-injection.js";
export type { ClientSessionState } from "./grpc/client-session.js";
export {
  createGrpcClientTransport,
  GRPC_DEFAULT_MAX_MESSAGE_BYTES,
  type GrpcClientTransport,
  type GrpcClientTransportOptions,
} from "./grpc/client-transport.js";
export type { EndpointTransportOptions } from "./grpc/endpoint-transport.js";
export {
  createIdempotencyKeyInterceptor,
  type IdempotencyKeyInterceptorOptions,
  type IdempotencyKeyMode,
  idempotencyKeyKey,
} from "./idempotency/client-key-interceptor.js";
export type { IdempotencyEvent } from "./idempotency/events.js";
export {
  createFileIdempotencyStore,
  FILE_STORE_DEFAULTS,
  type FileIdempotencyStore,
  type FileIdempotencyStoreOptions,
} from "./idempotency/file-store.js";
export {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_REPLAYED_HEADER,
} from "./idempotency/idempotency-key.js";
export { idempotencyTransactionKey } from "./idempotency/idempotency-transaction.js";
export {
  createMemoryIdempotencyStore,
  MEMORY_STORE_DEFAULTS,
  type MemoryIdempotencyStore,
  type MemoryIdempotencyStoreOptions,
} from "./idempotency/memory-store.js";
export type {
  PostgresPool,
  PostgresPoolClient,
  PostgresQueryable,
  PostgresQueryResult,
} from "./idempotency/postgres-client.js";
export {
  createPostgresIdempotencyStore,
  currentIdempotencyTransaction,
  POSTGRES_STORE_DEFAULTS,
  type PostgresIdempotencyStore,
  type PostgresIdempotencyStoreOptions,
} from "./idempotency/postgres-store.js";
export {
  createRedisIdempotencyStore,
  REDIS_STORE_CONNECTION_DEFAULTS,
  type RedisIdempotencyStore,
  type RedisIdempotencyStoreOptions,
} from "./idempotency/redis-store.js";
export {
  createIdempotencyInterceptor,
  IDEMPOTENCY_DEFAULTS,
  type IdempotencyInterceptorOptions,
  type IdempotencyMethodOptions,
} from "./idempotency/server-interceptor.js";
export { ServerIdentityMismatchError } from "./identity/client-identity.js";
export { currentPeerIdentity } from "./identity/current-peer-identity.js";
export {
  createDevCertificateAuthority,
  type DevCertificateAuthority,
  type DevCertificateAuthorityOptions,
  type IssuedIdentity,
  type IssueOptions,
} from "./identity/dev-certificate-authority.js";
export type {
  IdentityEvent,
  IdentityRejectedEvent,
  IdentityRotatedEvent,
} from "./identity/identity-events.js";
export {
  type IdentityMaterial,
  IdentityMaterialError,
  type IdentityPem,
  validateIdentityMaterial,
} from "./identity/identity-material.js";
export {
  createIdentitySource,
  IDENTITY_SOURCE_DEFAULTS,
  type IdentityFiles,
  type IdentitySource,
  type IdentitySourceOptions,
} from "./identity/identity-source.js";
export {
  peerIdentityOfCertificate,
  peerIdentityOfSocket,
} from "./identity/peer-identity-of.js";
export type {
  ClientCertificateMode,
  MeshServerIdentityOptions,
} from "./identity/server-identity.js";
export {
  isSpiffeId,
  parseSpiffeId,
  type SpiffeId,
  spiffeIdProblem,
} from "./identity/spiffe-id.js";
export { type TlsRefusal, TlsRefusalError } from "./identity/tls-refusal.js";
export { grpcMethodDefinition, grpcServiceDefinition } from "./interop/grpc-js-definition.js";
export {
  ADAPTIVE_CONCURRENCY_DEFAULTS,
  type AdaptiveAlgorithm,
  type AdaptiveConcurrencyOptions,
  type AdaptiveLimit,
  type AdaptiveLimitState,
  createAdaptiveLimit,
} from "./limit/adaptive-limit.js";
export {
  type ClientRateLimitOptions,
  createClientRateLimit,
} from "./limit/client-rate-limit.js";
export {
  CONCURRENCY_LIMIT_DEFAULTS,
  type ConcurrencyLimit,
  type ConcurrencyLimitOptions,
  createConcurrencyLimit,
  SERVER_LIMIT_KEY,
} from "./limit/concurrency-limit.js";
export {
  admitsCriticality,
  CRITICALITIES,
  CRITICALITY_SHARE_DEFAULTS,
  type Criticality,
  type CriticalityShares,
  parseCriticality,
} from "./limit/criticality.js";
export {
  type CriticalityOption,
  createCriticalityInterceptor,
} from "./limit/criticality-interceptor.js";
export {
  createGradient2Limit,
  GRADIENT2_DEFAULTS,
  type Gradient2Options,
  type Gradient2State,
} from "./limit/gradient2-limit.js";
export type { LimitAlgorithm, LimitWindow } from "./limit/limit-algorithm.js";
export type { LimitEvent } from "./limit/limit-events.js";
export {
  createMemoryRateLimitStore,
  MEMORY_RATE_LIMIT_STORE_DEFAULTS,
  type MemoryRateLimitStore,
  type MemoryRateLimitStoreOptions,
} from "./limit/memory-rate-limit-store.js";
export {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitRule,
  type RateLimitStats,
} from "./limit/rate-limit.js";
export type { RateLimitEvent } from "./limit/rate-limit-events.js";
export {
  type RateLimitStore,
  RateLimitStoreError,
  type RateLimitVerdict,
} from "./limit/rate-limit-store.js";
export {
  createRedisRateLimitStore,
  REDIS_RATE_LIMIT_STORE_DEFAULTS,
  type RedisRateLimitStore,
  type RedisRateLimitStoreOptions,
} from "./limit/redis-rate-limit-store.js";
export type { LimitSample, SampleWindowState } from "./limit/sample-window.js";
export {
  levelAt,
  type TokenBucketDecision,
  type TokenBucketLimit,
  type TokenBucketState,
  takeToken,
} from "./limit/token-bucket.js";
export {
  createVegasLimit,
  VEGAS_DEFAULTS,
  type VegasOptions,
  type VegasState,
} from "./limit/vegas-limit.js";
export type { MirrorEvent } from "./mirror/mirror-events.js";
export {
  createMirror,
  type Mirror,
  type MirrorDeps,
  type MirrorOptions,
} from "./mirror/mirror-interceptor.js";
export {
  createMirrorPolicy,
  decideMirror,
  MIRROR_POLICY_DEFAULTS,
  type MirrorCall,
  type MirrorDecision,
  type MirrorPolicy,
  type MirrorPolicyOptions,
  mirrorShareOf,
} from "./mirror/mirror-policy.js";
export { loggerKey, traceContextKey } from "./observability/context-keys.js";
export { currentLogger, currentTraceContext, setRootLogger } from "./observability/current-call.js";
export { createEventLogger, type EventLogger } from "./observability/event-logger.js";
export {
  createLogDestination,
  LOG_DESTINATION_DEFAULTS,
  type LogDestination,
  type LogDestinationOptions,
} from "./observability/log-destination.js";
export type { MeshEvent } from "./observability/mesh-event.js";
export {
  createMetrics,
  type MeshMetrics,
  type MetricsHandlerOptions,
  type MetricsOptions,
  metricsHandler,
  type ServeMetricsOptions,
  serveMetrics,
} from "./observability/metrics.js";
export { redactHeaders } from "./observability/redact-headers.js";
export type { TraceContext } from "./observability/trace-context.js";
export { QUEUE_TRANSIENT_CODES } from "./queue/failure-policy.js";
export { createMemoryQueue, type MemoryQueueOptions } from "./queue/memory-queue.js";
export {
  type DeadLetter,
  type DeadLetterReason,
  type DeadLettersOptions,
  type Queue,
  type QueueCounts,
  type QueueError,
  QueueJobNotFoundError,
  type ReplayOptions,
} from "./queue/queue.js";
export {
  createQueueWorker,
  QUEUE_WORKER_DEFAULTS,
  type QueueJobRef,
  type QueueWorker,
  type QueueWorkerCloseOptions,
  type QueueWorkerEvent,
  type QueueWorkerOptions,
} from "./queue/queue-worker.js";
export {
  createQueuedClient,
  QUEUED_CLIENT_DEFAULTS,
  type QueuedCallOptions,
  type QueuedCallReceipt,
  type QueuedClient,
  type QueuedClientOptions,
} from "./queue/queued-client.js";
export { type QueuedJobInfo, queuedJobKey } from "./queue/queued-job-key.js";
export {
  createRedisQueue,
  REDIS_QUEUE_DEFAULTS,
  type RedisQueueOptions,
} from "./queue/redis-queue.js";
export type { RedisClientLike, RedisConnectionOptions } from "./redis-client.js";
export { RETRY_BUDGET_DEFAULTS, type RetryBudgetOptions } from "./retry/retry-budget.js";
export type { GiveUpReason, RetryEvent } from "./retry/retry-events.js";
export {
  type HedgingOptions,
  RETRY_POLICY_DEFAULTS,
  type RetryOptions,
  type RetryPolicy,
} from "./retry/retry-policy.js";
export {
  type BoundAddress,
  type CloseOptions,
  createMeshServer,
  type ListenOptions,
  type MeshServer,
  type MeshServerOptions,
  type MeshServerTlsOptions,
} from "./server/create-mesh-server.js";
export { type HealthStatus, ServingStatus } from "./server/health-status.js";
export {
  type MeshServerRegistration,
  REGISTRATION_DEFAULTS,
  type RegistrationUnavailableMode,
} from "./server/registrar.js";
export type {
  BreakerSnapshot,
  BreakerTransitionRecord,
  CallCountsSnapshot,
  EjectionRecord,
  EjectionSnapshot,
  EndpointSnapshot,
  HedgingSnapshot,
  IdempotencySnapshot,
  MethodCallsSnapshot,
  MethodSnapshot,
  RegistrationSnapshot,
  ResolverSnapshot,
  RetryBudgetSnapshot,
  RetrySnapshot,
  ServerSnapshot,
  ServerSnapshotSource,
  ServiceSnapshot,
  SocketSnapshot,
  TransportSnapshot,
  TransportSnapshotSource,
} from "./state/snapshot.js";

// --- For integrators ---------------------------------------------------------

export {
  BALANCER_DEFAULTS,
  type Balancer,
  type BalancerEvent,
  type BalancerOptions,
  type BalancerPick,
  type BalancerPickInfo,
  type BalancerSnapshot,
  type BalancerState,
  createBalancer,
  type LoadBalancingPolicy,
  type Subchannel,
} from "./balancer/balancer.js";
export type { EndpointLoad, EndpointLoads } from "./balancer/endpoint-load.js";
// Types named by the signatures above, exported so users can name them too
// (and the API reference can link to them).
export type {
  FailurePercentageOptions,
  OutlierEjectionReason,
  SuccessRateOptions,
} from "./balancer/outlier-detector.js";
export {
  OUTLIER_DETECTOR_DEFAULTS,
  type OutlierDetectorOptions,
  type OutlierEvent,
} from "./balancer/outlier-detector.js";
export type { PeakEwma } from "./balancer/peak-ewma.js";
export { PEAK_EWMA_DEFAULTS, type PeakEwmaOptions } from "./balancer/peak-ewma.js";
export {
  chainDone,
  type DoneInfo,
  type HeaderLookup,
  isAvoided,
  type Picker,
  type PickInfo,
  type PickResult,
} from "./balancer/picker.js";
export {
  PICKER_FACTORIES,
  type PickerContext,
  type PickerFactory,
} from "./balancer/picker-registry.js";
export type { SlowStart } from "./balancer/slow-start.js";
export { SLOW_START_DEFAULTS, type SlowStartOptions } from "./balancer/slow-start.js";
export {
  type HeldEndpoint,
  type RemovalReason,
  type StabilizeDecision,
  type StabilizeInput,
  stabilizeEndpoints,
} from "./balancer/stabilize-endpoints.js";
export {
  decideZoneRouting,
  type ZoneDecision,
  type ZoneInput,
  type ZoneShare,
} from "./balancer/zone-aware.js";
export type { CallOutcome } from "./breaker/call-outcome.js";
export type { CircuitTransition, TransitionReason } from "./breaker/circuit-breaker.js";
export type { ResolvedFailureAccrualOptions, TripReason } from "./breaker/failure-accrual.js";
export type { FailureWindowOptions } from "./breaker/failure-window.js";
export type { AttemptInit } from "./call/attempt.js";
export { type Attempt, attemptKey, createAttempt, withPicked } from "./call/attempt.js";
export { createEventEmitter } from "./call/event-emitter.js";
export {
  GRPC_STATUS_HEADER,
  PREVIOUS_ATTEMPTS_HEADER,
  RETRY_PUSHBACK_HEADER,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
} from "./call/headers.js";
export { type MeshCall, meshCallKey } from "./call/mesh-call.js";
export {
  ANONYMOUS_PEER,
  type PeerIdentity,
  peerIdentityKey,
  principalOf,
} from "./call/peer-identity.js";
export { type ServerCall, serverCallKey } from "./call/server-call.js";
export { onSettled, type Settled } from "./call/settle.js";
export { CLIENT_INTERCEPTOR_ORDER } from "./chain/client-chain.js";
export { SERVER_INTERCEPTOR_ORDER } from "./chain/server-chain.js";
export {
  BACKGROUND,
  type Clock,
  type ClockTimer,
  clampTimerDelayMs,
  MAX_TIMER_DELAY_MS,
  systemClock,
  type TimerOptions,
} from "./clock.js";
export { formatAddress, type HostPort, parseAddress } from "./discovery/address.js";
export {
  type ResolverChoice,
  type ResolverFactory,
  sharedEtcdRegistry,
  sharedMeshRegistry,
} from "./discovery/create-resolver.js";
export {
  DNS_CLIENT_DEFAULTS,
  type DnsClientOptions,
} from "./discovery/dns-client.js";
export {
  createDnsResolver,
  DNS_RESOLVER_DEFAULTS,
  type DnsResolverOptions,
} from "./discovery/dns-resolver.js";
export { type DnsTarget, parseDnsTarget } from "./discovery/dns-target.js";
export {
  createEndpoint,
  createEndpointSet,
  type Endpoint,
  type EndpointSet,
} from "./discovery/endpoint.js";
export {
  createEndpointListResolver,
  type EndpointInit,
} from "./discovery/endpoint-list-resolver.js";
export {
  createEtcdRegistry,
  ETCD_MIN_LEASE_TTL_MS,
  ETCD_REGISTRY_DEFAULTS,
  type EtcdRegistryOptions,
  EtcdWatchError,
} from "./discovery/etcd-registry.js";
export {
  createMeshRegistry,
  defaultMeshRegistryDir,
  MESH_REGISTRY_DEFAULTS,
  type MeshRegistry,
  type MeshRegistryOptions,
} from "./discovery/mesh-registry.js";
export {
  formatRegistrationRecord,
  parseRegistrationRecord,
  type Registered,
  type Registration,
  type RegistryEvent,
  type ServiceRegistry,
} from "./discovery/registry.js";
export type { Resolver, ResolverEvent, ResolverListener } from "./discovery/resolver.js";
export { createStaticResolver } from "./discovery/static-resolver.js";
export { parseTarget, type Target } from "./discovery/target.js";
export type { MeshServerHttp2Options } from "./grpc/server-http2-settings.js";
export { encodeGrpcTimeout, GRPC_TIMEOUT_HEADER, parseGrpcTimeout } from "./grpc-timeout.js";
export type { ErrorInfo } from "./idempotency/error-info.js";
export { ErrorInfoSchema, IDEMPOTENCY_ERROR_DOMAIN } from "./idempotency/error-info.js";
export type { IdempotencyCall } from "./idempotency/events.js";
export type { MemoryStoreStats } from "./idempotency/memory-store.js";
export type { HeaderList, IdempotencyOutcome, StoredDetail } from "./idempotency/outcome.js";
export type { StoredState } from "./idempotency/store.js";
export {
  type ClaimResult,
  formatRecordKey,
  type IdempotencyRecord,
  type IdempotencyStore,
  IdempotencyStoreError,
} from "./idempotency/store.js";
export {
  type ClientAttemptOptions,
  createClientAttemptInterceptor,
} from "./observability/client-attempt-interceptor.js";
export {
  type ClientObserveOptions,
  createClientObserveInterceptor,
} from "./observability/client-observe-interceptor.js";
export { clientTraceContextKey } from "./observability/context-keys.js";
export type { MetricsRegistry, MetricsServer, RpcLabels } from "./observability/metrics.js";
export {
  createServerObserveInterceptor,
  type ServerObserveOptions,
} from "./observability/server-observe-interceptor.js";
export type { NewRootOptions } from "./observability/trace-context.js";
export {
  childOf,
  formatTraceparent,
  newRootContext,
  parseTraceparent,
} from "./observability/trace-context.js";
export { normalizeTracestate } from "./observability/tracestate.js";
export type {
  ConsumeOptions,
  Consumer,
  JobOutcome,
  JobProcessor,
  QueuedJob,
} from "./queue/queue.js";
export {
  decodeQueuedCall,
  effectiveIdempotencyKey,
  encodeQueuedCall,
  type QueuedCall,
  type QueuedCallJson,
} from "./queue/queued-call.js";
export type { HealthListener } from "./server/health-status.js";

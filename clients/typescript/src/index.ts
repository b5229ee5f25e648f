/**
 * TypeScript client of the CRM AI orchestration service (`crm.ai.v1`).
 *
 * Re-exports the generated messages and service descriptors (protoc-gen-es v2, see `src/gen`) and
 * offers {@link createClients}, which connects typed Connect-ES clients over gRPC (HTTP/2).
 *
 * @example
 * ```ts
 * import { createClients, ConnectError, Code } from "@crm/ai-orchestration-client";
 *
 * const { scoring } = createClients({ address: "127.0.0.1:50051", token: process.env.AIO_TOKEN });
 * const score = await scoring.scoreLead({ lead: { leadId: "L-1", email: "jane@example.com" } });
 * ```
 *
 * @packageDocumentation
 */
import type { SecureClientSessionOptions } from "node:http2";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { InsightService } from "./gen/crm/ai/v1/insight_pb.js";
import { ScoringService } from "./gen/crm/ai/v1/scoring_pb.js";
import { WorkflowService } from "./gen/crm/ai/v1/workflow_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";

// crm.ai.v1: messages, enums and the three service descriptors.
export * from "./gen/crm/ai/v1/common_pb.js";
export * from "./gen/crm/ai/v1/insight_pb.js";
export * from "./gen/crm/ai/v1/scoring_pb.js";
export * from "./gen/crm/ai/v1/workflow_pb.js";
// google.rpc error details (BadRequest, ErrorInfo, RetryInfo, ...) for `ConnectError.findDetails`,
// and google.rpc.Status. `google.rpc.Code` is not re-exported: use Connect's `Code` below.
export * from "./gen/google/rpc/error_details_pb.js";
export * from "./gen/google/rpc/status_pb.js";
// grpc.health.v1 (standard gRPC health checking).
export * from "./gen/grpc/health/v1/health_pb.js";
// The Connect-ES names a caller needs to handle errors and call options.
export { Code, ConnectError, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";

/** Options of {@link createClients}. */
export interface ClientOptions {
  /**
   * Server address as `host:port` (e.g. `127.0.0.1:50051`, `[::1]:50051`), or a full base URL
   * (`http://host:port` / `https://host:port`), which is used as is.
   */
  address: string;
  /** Bearer token; when set, every call carries `authorization: Bearer <token>`. */
  token?: string;
  /**
   * TLS: `true` for TLS with the system CAs, or Node `http2.connect` TLS options (`ca`, `cert`,
   * `key`, `servername`, ...). Unset or `false` for plaintext (h2c). Ignored when `address` is a
   * full URL (its scheme decides).
   */
  tls?: boolean | SecureClientSessionOptions;
  /** Extra interceptors, run after the authorization one. */
  interceptors?: Interceptor[];
  /** Default deadline of every call, in milliseconds; per-call `timeoutMs` overrides it. */
  defaultTimeoutMs?: number;
}

/** The typed clients returned by {@link createClients}, sharing one HTTP/2 connection. */
export interface Clients {
  /** `crm.ai.v1.ScoringService`: lead scoring, outcomes and models. */
  scoring: Client<typeof ScoringService>;
  /** `crm.ai.v1.WorkflowService`: workflow runs. */
  workflows: Client<typeof WorkflowService>;
  /** `crm.ai.v1.InsightService`: interactions, insights, answers and alerts. */
  insights: Client<typeof InsightService>;
  /** `grpc.health.v1.Health`: standard health checks (if the server registers it). */
  health: Client<typeof Health>;
  /** The underlying gRPC transport, to create further clients with `createClient`. */
  transport: Transport;
}

/**
 * Returns an interceptor that adds `authorization: Bearer <token>` to every request.
 *
 * @param token - the bearer token (without the `Bearer ` prefix)
 */
export function bearerAuth(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * Creates a gRPC transport (HTTP/2, via `@connectrpc/connect-node`) to the server and the typed
 * clients of its services.
 *
 * @param options - address, optional bearer token and TLS settings
 * @returns the clients, which share the transport and its HTTP/2 connection
 */
export function createClients(options: ClientOptions): Clients {
  const { address, token, tls, interceptors = [], defaultTimeoutMs } = options;
  const baseUrl = address.includes("://") ? address : `${tls ? "https" : "http"}://${address}`;
  const transport = createGrpcTransport({
    // createGrpcTransport always speaks HTTP/2 (httpVersion "2").
    baseUrl,
    interceptors: token ? [bearerAuth(token), ...interceptors] : interceptors,
    ...(typeof tls === "object" ? { nodeOptions: tls } : {}),
    ...(defaultTimeoutMs !== undefined ? { defaultTimeoutMs } : {}),
  });
  return {
    scoring: createClient(ScoringService, transport),
    workflows: createClient(WorkflowService, transport),
    insights: createClient(InsightService, transport),
    health: createClient(Health, transport),
    transport,
  };
}

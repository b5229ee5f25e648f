// Integration tests against a RUNNING server (run by `make test` through pytest, or by hand):
//
//   AIO_TEST_ADDRESS=127.0.0.1:50051 [AIO_TEST_TOKEN=...] npm test
//
// Without AIO_TEST_ADDRESS every test fails (on purpose: a missing server must not look green).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BadRequestSchema,
  Code,
  ConnectError,
  createClients,
  type Clients,
} from "../index.js";

/** Deadline of each call, so that a wedged server fails the test instead of hanging it. */
const CALL_OPTIONS = { timeoutMs: 15_000 };

let cached: Clients | undefined;

function clients(): Clients {
  const address = process.env.AIO_TEST_ADDRESS;
  if (!address) {
    throw new Error(
      "AIO_TEST_ADDRESS is not set: these tests need a running server, e.g. " +
        "`AIO_TEST_ADDRESS=127.0.0.1:50051 npm test` (optional AIO_TEST_TOKEN for the bearer token). " +
        "`make test` starts a server and sets it.",
    );
  }
  const token = process.env.AIO_TEST_TOKEN || undefined;
  cached ??= createClients({ address, ...(token ? { token } : {}) });
  return cached;
}

/** Runs `call`, which must reject, and returns its error as a ConnectError. */
async function connectErrorOf(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    assert.ok(e instanceof ConnectError, `expected a ConnectError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to fail, but it succeeded");
}

function codeName(code: Code): string {
  return `${Code[code]} (${code})`;
}

describe("crm.ai.v1 over gRPC", () => {
  test("WorkflowService.ListWorkflows succeeds or is UNIMPLEMENTED", async () => {
    const { workflows } = clients();
    try {
      const res = await workflows.listWorkflows({}, CALL_OPTIONS);
      assert.ok(Array.isArray(res.workflows));
    } catch (e) {
      const err = ConnectError.from(e);
      assert.equal(
        err.code,
        Code.Unimplemented,
        `expected success or UNIMPLEMENTED, got ${codeName(err.code)}: ${err.rawMessage}`,
      );
    }
  });

  test("ScoringService.ScoreLead with an empty lead_id is INVALID_ARGUMENT with a BadRequest", async () => {
    const { scoring } = clients();
    const err = await connectErrorOf(() => scoring.scoreLead({ lead: { leadId: "" } }, CALL_OPTIONS));
    assert.equal(
      err.code,
      Code.InvalidArgument,
      `expected INVALID_ARGUMENT, got ${codeName(err.code)}: ${err.rawMessage}`,
    );
    const details = err.findDetails(BadRequestSchema);
    assert.ok(
      details.length > 0,
      `expected a google.rpc.BadRequest in grpc-status-details-bin, got details of types: ${
        err.details.map((d) => ("desc" in d ? d.desc.typeName : d.type)).join(", ") || "(none)"
      }`,
    );
    const fields = details.flatMap((d) => d.fieldViolations.map((v) => v.field));
    assert.ok(fields.includes("lead.lead_id"), `expected a violation of lead.lead_id, got: ${fields.join(", ")}`);
  });

  test("ScoringService.ScoreLead scores a lead and explains it", async () => {
    const { scoring } = clients();
    const score = await scoring.scoreLead(
      { lead: { leadId: "L-1", demoRequested: true, email: "cto@bigco.example" } },
      CALL_OPTIONS,
    );
    assert.equal(score.leadId, "L-1");
    assert.ok(score.score >= 0 && score.score <= 100, `score out of range: ${score.score}`);
    assert.ok(score.modelVersion.length > 0, "expected a model version");
    const demo = score.positiveFactors.find((f) => f.feature === "demo_requested");
    assert.ok(demo, "expected the demo request among the positive factors");
    assert.match(demo.reason, /^Requested a demo \(\+\d+\)$/);
  });
});

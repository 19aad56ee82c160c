import type { Scenario } from "../lib/scenario.js";
import { admin } from "./admin.js";
import { balancing } from "./balancing.js";
import { breakers } from "./breakers.js";
import { discovery } from "./discovery.js";
import { faults } from "./faults.js";
import { footprint } from "./footprint.js";
import { idempotency } from "./idempotency.js";
import { logging } from "./logging.js";
import { mirror } from "./mirror.js";
import { overload } from "./overload.js";
import { overloadBalance } from "./overload-balance.js";
import { paced } from "./paced.js";
import { queue } from "./queue.js";
import { retries } from "./retries.js";
import { streaming } from "./streaming.js";
import { traffic } from "./traffic.js";
import { transport } from "./transport.js";

/** SCENARIOS lists the suites `npm run bench -- --suite <name>` can run. */
export const SCENARIOS: Readonly<Record<string, Scenario>> = {
  [transport.name]: transport,
  [idempotency.name]: idempotency,
  [logging.name]: logging,
  [balancing.name]: balancing,
  [queue.name]: queue,
  [discovery.name]: discovery,
  [retries.name]: retries,
  [breakers.name]: breakers,
  [faults.name]: faults,
  [streaming.name]: streaming,
  [traffic.name]: traffic,
  [overloadBalance.name]: overloadBalance,
  [overload.name]: overload,
  [mirror.name]: mirror,
  [admin.name]: admin,
  [footprint.name]: footprint,
  [paced.name]: paced,
};

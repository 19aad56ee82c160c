import type { Scenario } from "../lib/scenario.js";
import { balancing } from "./balancing.js";
import { transport } from "./transport.js";

/** SCENARIOS lists the suites `npm run bench -- --suite <name>` can run. */
export const SCENARIOS: Readonly<Record<string, Scenario>> = {
  [transport.name]: transport,
  [balancing.name]: balancing,
};

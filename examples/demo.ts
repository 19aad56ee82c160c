// `npm start`: the mesh surviving faults. Starts a service registry and 3
// replicas of the example OrderService as separate processes (one slow, one
// failing 30% of calls, one SIGKILLed and restarted mid-run), drives
// CreateOrder and GetOrder calls through one mesh transport for 20 s while a
// live status shows calls/s, retries, breakers, traffic per replica,
// ejections and registry changes, then prints a summary, follows one retried
// call across the processes' JSON logs, and exits 0 when the run met its
// expectations. `npm start -- --help` lists the options; the parts live in
// examples/demo/.
import { OptionsError, parseDemoOptions, USAGE } from "./demo/options.js";
import { runDemo } from "./demo/run.js";

let code: number;
try {
  const opts = parseDemoOptions(process.argv.slice(2));
  if (opts.help) {
    console.log(USAGE);
    code = 0;
  } else {
    code = await runDemo(opts);
  }
} catch (e) {
  if (!(e instanceof OptionsError)) throw e;
  console.error(`demo: ${e.message}\n\n${USAGE}`);
  code = 2;
}
process.exit(code);

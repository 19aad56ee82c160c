import { createMemoryQueue } from "../../src/queue/memory-queue.js";
import { queueContract } from "./queue-contract.js";

queueContract("memory", () => createMemoryQueue({ name: "orders" }));

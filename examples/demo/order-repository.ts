import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { type Order, OrderSchema } from "../../gen/example/orders/v1/orders_pb.js";
import type { OrderRepository } from "../order-service.js";

/**
 * createFileOrderRepository keeps orders as JSON files in `dir`, so that every
 * replica process of the demo can answer GetOrder for an order another one
 * created (a real service would use a database). Writes go to a temp file
 * renamed into place: readers never see half an order.
 */
export function createFileOrderRepository(dir: string): OrderRepository {
  const path = (id: string) => join(dir, `${id.replace(/[^\w-]/g, "_")}.json`);
  return {
    get(id) {
      try {
        return fromJsonString(OrderSchema, readFileSync(path(id), "utf8"));
      } catch (e) {
        if ((e as { code?: string }).code === "ENOENT") return undefined;
        throw e;
      }
    },
    set(id, order: Order) {
      const tmp = `${path(id)}.${process.pid}.tmp`;
      writeFileSync(tmp, toJsonString(OrderSchema, order));
      renameSync(tmp, path(id));
    },
  };
}

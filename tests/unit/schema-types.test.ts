/**
 * The spec's zod schema and its documented types (spec/types.ts), and the operation args' schema and
 * their interface, are tied at compile time: a field in one and not the other is a type error that
 * names it. `npm run typecheck` checks this file; the @ts-expect-error lines fail it if the check
 * stops catching a field that is missing on either side.
 */
import { OPERATION_SCHEMA_MATCHES, OPERATION_KEYS, operationSchema } from "../../provider/src/component/node-args";
import { FieldsApart, SCHEMA_MATCHES_TYPES, nodeSpecSchema } from "../../provider/src/spec/schema";

type Agree<A, B> = [FieldsApart<A, B>] extends [never] ? true : { fieldsApart: FieldsApart<A, B> };

test("the check names a field that one side lacks, and passes when both agree", () => {
  const same: Agree<{ a: 1; b: 2 }, { a: 1; b: 2 }> = true;
  // @ts-expect-error: the type has a field the schema lacks
  const missingInSchema: Agree<{ a: 1 }, { a: 1; added: 2 }> = true;
  // @ts-expect-error: the schema has a field the type lacks
  const missingInType: Agree<{ a: 1; added: 2 }, { a: 1 }> = true;
  const named: Agree<{ a: 1 }, { a: 1; added: 2 }> = { fieldsApart: "added" };
  expect([same, missingInSchema, missingInType, named.fieldsApart]).toEqual([true, true, true, "added"]);
});

test("the spec's and the operation args' schemas agree with their types", () => {
  expect(SCHEMA_MATCHES_TYPES.every((x) => x === true)).toBe(true);
  expect(OPERATION_SCHEMA_MATCHES).toBe(true);
  expect(OPERATION_KEYS).toEqual(Object.keys(operationSchema.shape));
  expect(Object.keys(nodeSpecSchema.shape)).toContain("containerdVersion");
});

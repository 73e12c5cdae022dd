/**
 * The package's args and outputs are the library's, field for field, checked when the repository
 * type-checks (`npm run typecheck`; not part of the package itself). A library field missing here,
 * a field here the library does not have, or one the library would not take fails with its path:
 *   Type '"ContainerdNodeArgs.registries[*].mirrors[].newField: not in the package"' does not satisfy the constraint 'never'.
 * Then run tools/package-args.ts, which writes args.generated.ts from the library's types. Passing:
 * the spellings of README's "What differs from TypeScript" (a union as one of its members, a value or
 * a list as the list, literals as strings, `unknown` as `any`, outputs as Outputs), and not crossing:
 * restartAfter, filesAfter and the outputs that are resources.
 */
import type * as pulumi from "@pulumi/pulumi";
import type * as lib from "@containerd-pulumi/containerd-node";
import type * as pkg from "./index";

type Wrapped = Promise<unknown> | pulumi.OutputInstance<unknown>;
type Plain<T> = T extends pulumi.OutputInstance<infer U> ? U : T extends Promise<infer U> ? U : T;
type Items<T> = T extends readonly (infer E)[] ? E : T;
type Scalar<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : never;
type Objects<T> = Exclude<T, string | number | boolean | readonly unknown[] | Wrapped>;
type Has<T, U> = [Extract<T, U>] extends [never] ? false : true;
type Where<Package extends boolean> = Package extends true ? "the package" : "the library";
type Optional<T, K extends keyof T> = {} extends Pick<T, K> ? true : false;

/** Every difference between the package's type P and the library's L, each as "path: what". */
export type Mismatches<P, L, At extends string> = 0 extends 1 & P ? never : unknown extends L ? never : Lists<NonNullable<P>, NonNullable<L>, At>;

/** Lists (the library's `X | X[]` too) compare by their items. */
type Lists<P, L, At extends string> =
  Has<P, readonly unknown[]> extends Has<L, readonly unknown[]>
    ? Has<P, readonly unknown[]> extends true ? Mismatches<Items<P>, Items<L>, `${At}[]`> : Values<P, L, At>
    : `${At}: a list in ${Where<Has<P, readonly unknown[]>>} only`;

type Values<P, L, At extends string> =
  Has<P, Wrapped> extends Has<L, Wrapped>
    ? | ([Scalar<Plain<P>>] extends [Scalar<Plain<L>>] ? never : `${At}: a value the library does not take`)
      | Fields<Objects<Plain<P>>, Objects<Plain<L>>, At>
    : `${At}: an Input in ${Where<Has<P, Wrapped>>} only`;

type Fields<P, L, At extends string> = [P] extends [never]
  ? [L] extends [never] ? never : `${At}: an object in the library only`
  : [L] extends [never] ? `${At}: an object in the package only`
  : string extends keyof L ? (string extends keyof P ? Mismatches<P[keyof P], L[keyof L], `${At}[*]`> : `${At}: a map in the library only`)
  : | { [K in Exclude<keyof L, keyof P>]-?: `${At}.${K & string}: not in the package` }[Exclude<keyof L, keyof P>]
    | { [K in Exclude<keyof P, keyof L>]-?: `${At}.${K & string}: not in the library` }[Exclude<keyof P, keyof L>]
    | { [K in keyof P & keyof L]-?:
        | Mismatches<P[K], L[K], `${At}.${K & string}`>
        | (Optional<P, K> extends Optional<L, K> ? never : `${At}.${K & string}: optional in ${Where<Optional<P, K>>} only`) }[keyof P & keyof L];

/** A component's outputs, as plain values. */
type Outputs<C> = { [K in Exclude<keyof C, keyof pulumi.ComponentResource>]: Plain<C[K]> };
type Expect<T extends never> = T;

export type Checked = [
  Expect<Mismatches<pkg.ContainerdNodeArgs, Omit<lib.ContainerdNodeArgs, "restartAfter" | "filesAfter">, "ContainerdNodeArgs">>,
  Expect<Mismatches<pkg.ContainerdFleetArgs, lib.ContainerdFleetArgs, "ContainerdFleetArgs">>,
  Expect<Mismatches<Outputs<pkg.ContainerdNode>, Omit<Outputs<lib.ContainerdNode>, "configCommand" | "hostCommand" | "commands" | "setAsideCommand" | "beforeRestartCommand" | "afterRestartCommand">, "ContainerdNode">>,
  Expect<Mismatches<Outputs<pkg.ContainerdFleet>, Omit<Outputs<lib.ContainerdFleet>, "nodes">, "ContainerdFleet">>,
];

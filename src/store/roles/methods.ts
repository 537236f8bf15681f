// A role's method names as a value, for the code that composes roles (kysely-store.ts) and routes
// them (grouped-store.ts) at run time. The compiler checks a list names every method of its role.

type Missing<R, N extends readonly PropertyKey[]> = Exclude<keyof R, N[number]>;

/** `roleMethods<Mailstore>()([...])`: refused unless the list names every method of the role. */
export function roleMethods<R>() {
  return <const N extends readonly (keyof R & string)[]>(names: N & ([Missing<R, N>] extends [never] ? unknown : { missing: Missing<R, N> })): N => names;
}

/** JSON columns: written with `toJson`, read with `fromJson` (a corrupt column is a store fault). */
export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

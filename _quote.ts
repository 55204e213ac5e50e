// Error-message helper: values quoted, long ones cut, per the style guide.

/** Quotes a value for an error message, keeping long ones short. */
export function quote(value: unknown): string {
  let text: string;
  if (typeof value === "string") text = JSON.stringify(value);
  else if (value instanceof Uint8Array) {
    text = `${value.constructor.name}(${value.length})`;
  } else if (typeof value === "object" && value !== null) {
    text = value.constructor?.name ?? "object";
  } else text = String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// A tool plugin written in JavaScript: `convert_units` converts lengths, masses and
// temperatures. Built into a component with ComponentizeJS against the host's WIT
// (`wit/`), like any other plugin.

// Each unit's size in its dimension's base unit (metre, kilogram).
const SCALES = {
  length: { mm: 0.001, cm: 0.01, m: 1, km: 1000, in: 0.0254, ft: 0.3048, yd: 0.9144, mi: 1609.344 },
  mass: { g: 0.001, kg: 1, t: 1000, oz: 0.028349523125, lb: 0.45359237 },
};

// Temperatures are not proportional: each unit to and from kelvin.
const TEMPERATURES = {
  C: { toK: (v) => v + 273.15, fromK: (k) => k - 273.15 },
  F: { toK: (v) => ((v - 32) * 5) / 9 + 273.15, fromK: (k) => ((k - 273.15) * 9) / 5 + 32 },
  K: { toK: (v) => v, fromK: (k) => k },
};

const UNITS = [
  ...Object.keys(SCALES.length),
  ...Object.keys(SCALES.mass),
  ...Object.keys(TEMPERATURES),
];

const INPUT_SCHEMA = {
  type: "object",
  properties: {
    value: { type: "number", description: "The quantity to convert." },
    from: { type: "string", enum: UNITS, description: "Its unit." },
    to: { type: "string", enum: UNITS, description: "The unit wanted." },
  },
  required: ["value", "from", "to"],
  additionalProperties: false,
};

const OUTPUT_SCHEMA = {
  type: "object",
  properties: {
    value: { type: "number" },
    unit: { type: "string" },
    dimension: { type: "string" },
  },
  required: ["value", "unit", "dimension"],
};

function dimensionOf(unit) {
  if (unit in TEMPERATURES) return "temperature";
  return Object.keys(SCALES).find((dimension) => unit in SCALES[dimension]);
}

function convert({ value, from, to }) {
  const dimension = dimensionOf(from);
  if (dimension !== dimensionOf(to)) {
    // The schema allows any two units; only units of one dimension convert.
    throw { tag: "invalid-arguments", val: `cannot convert ${from} (${dimension}) to ${to} (${dimensionOf(to)})` };
  }
  const converted =
    dimension === "temperature"
      ? TEMPERATURES[to].fromK(TEMPERATURES[from].toK(value))
      : (value * SCALES[dimension][from]) / SCALES[dimension][to];
  const rounded = Number(converted.toPrecision(12));
  return {
    content: [{ tag: "text", val: `${value} ${from} = ${rounded} ${to}` }],
    structured: JSON.stringify({ value: rounded, unit: to, dimension }),
    isError: false,
  };
}

export const tools = {
  listTools() {
    return [
      {
        name: "convert_units",
        title: "Convert units",
        description: "Converts a length, mass or temperature from one unit to another.",
        inputSchema: JSON.stringify(INPUT_SCHEMA),
        outputSchema: JSON.stringify(OUTPUT_SCHEMA),
        annotations: { readOnly: true, destructive: false, idempotent: true, openWorld: false },
      },
    ];
  },
  callTool(name, args) {
    if (name !== "convert_units") throw { tag: "unknown-tool", val: name };
    return convert(JSON.parse(args));
  },
};

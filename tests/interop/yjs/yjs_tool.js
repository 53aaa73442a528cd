// Reads one JSON request on stdin, writes one JSON answer: what the reference Yjs makes of updates.
//   {"apply": [b64 update, ...], "insert": [index, string] | null}
//   -> {"text": ..., "update": b64 of the insert's update (or null), "state": b64 of the whole state}
const Y = require("yjs");

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const doc = new Y.Doc();
  const text = doc.getText("text");
  for (const u of req.apply || []) Y.applyUpdate(doc, Buffer.from(u, "base64"));
  let made = null;
  if (req.insert) {
    const before = Y.encodeStateVector(doc);
    text.insert(req.insert[0], req.insert[1]);
    made = Buffer.from(Y.encodeStateAsUpdate(doc, before)).toString("base64");
  }
  const state = Buffer.from(Y.encodeStateAsUpdate(doc)).toString("base64");
  process.stdout.write(JSON.stringify({ text: text.toString(), update: made, state }));
});

// Tests of proof.js under Node's WebCrypto, against a fixture made from a
// real trail by TestConsoleAudit_proof (cmd/phivault):
//
//	node --test console/static/proof_test.mjs
//
// PROOF_FIXTURE names another fixture (the Go test passes a fresh one);
// the default is console/testdata/proof_fixture.json. No npm packages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const proof = require("./proof.js");

const fixturePath = process.env.PROOF_FIXTURE || new URL("../testdata/proof_fixture.json", import.meta.url);
const fixture = JSON.parse(readFileSync(fixturePath, "utf8"));
const byName = Object.fromEntries(fixture.cases.map((c) => [c.name, c]));

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (s) => new Uint8Array(Buffer.from(s, "base64"));

// check runs proof.js's verifyEntry on a copy of case c changed by change.
async function check(c, change = () => {}, vkey = fixture.vkey) {
  const data = structuredClone(c.data);
  const row = structuredClone(c.row);
  change(data, row);
  return proof.verifyEntry(data, row, vkey);
}

test("the fixture's cases check as they should", async () => {
  assert.ok(fixture.cases.length >= 3);
  for (const c of fixture.cases) {
    const got = await check(c);
    assert.equal(got.status, c.want, `${c.name}: ${got.reason}`);
  }
});

test("a changed byte of the entry fails", async () => {
  const c = byName.create;
  const entry = unb64(c.data.entry);
  for (const i of [0, Math.floor(entry.length / 2), entry.length - 1]) {
    const got = await check(c, (d) => {
      const e = unb64(d.entry);
      e[i] ^= 0x01;
      d.entry = b64(e);
    });
    assert.equal(got.status, "failed", `byte ${i}`);
  }
});

test("a changed entry that still matches the row fails on the proof", async () => {
  const c = byName.create;
  const got = await check(c, (d) => {
    const s = Buffer.from(d.entry, "base64").toString("utf8");
    const changed = s.replace(`"outcome":"ok"`, `"outcome":"ko"`);
    assert.notEqual(changed, s);
    d.entry = Buffer.from(changed, "utf8").toString("base64");
  });
  assert.equal(got.status, "failed");
  assert.match(got.reason, /root hash/);
});

test("the entry must be the row shown", async () => {
  const c = byName.create;
  assert.equal((await check(c, (d, row) => { row.recorded = row.recorded.replace(/\d(?=Z$)/, (x) => String((+x + 1) % 10)); })).status, "failed");
  assert.equal((await check(c, (d, row) => { row.actor = "someone-else"; })).status, "failed");
  // Another entry's data, shown for this row.
  const other = await check(c, (d) => { Object.assign(d, structuredClone(byName.read.data)); });
  assert.equal(other.status, "failed");
});

test("a changed proof fails", async () => {
  const c = byName.create;
  assert.ok(c.data.proof.length > 0, "the fixture's proof is empty");
  const flipped = await check(c, (d) => {
    const h = unb64(d.proof[0]);
    h[31] ^= 0x80;
    d.proof[0] = b64(h);
  });
  assert.equal(flipped.status, "failed");
  assert.equal((await check(c, (d) => { d.proof.pop(); })).status, "failed");
  assert.equal((await check(c, (d) => { d.proof.push(d.proof[0]); })).status, "failed");
  // The right proof for another index.
  assert.equal((await check(c, (d, row) => { d.index = row.index = String(Number(row.index) + 1); })).status, "failed");
});

test("the checkpoint must be signed by the verifier key", async () => {
  const c = byName.create;
  // A changed root hash or size breaks the signature.
  const text = c.data.checkpoint;
  const lines = text.split("\n");
  const bigger = await check(c, (d) => {
    d.checkpoint = [lines[0], String(Number(lines[1]) + 1), ...lines.slice(2)].join("\n");
  });
  assert.equal(bigger.status, "failed");
  assert.match(bigger.reason, /signature/);
  // A signature byte changed.
  const sigChanged = await check(c, (d) => {
    const [head, sigLine] = [text.slice(0, text.lastIndexOf("\n\n") + 2), text.slice(text.lastIndexOf("\n\n") + 2)];
    const [dash, name, sig64] = sigLine.trim().split(" ");
    const sig = unb64(sig64);
    sig[10] ^= 1;
    d.checkpoint = `${head}${dash} ${name} ${b64(sig)}\n`;
  });
  assert.equal(sigChanged.status, "failed");
  // Another key of the same name.
  const [, name, key64] = /^([^+]+)\+[0-9a-f]{8}\+(.+)$/.exec(fixture.vkey);
  const otherKey = unb64(key64);
  otherKey[5] ^= 1;
  const keyBytes = new Uint8Array([...new TextEncoder().encode(name + "\n"), ...otherKey]);
  const hash = Buffer.from(await crypto.subtle.digest("SHA-256", keyBytes)).subarray(0, 4).toString("hex");
  const other = await check(c, () => {}, `${name}+${hash}+${b64(otherKey)}`);
  assert.equal(other.status, "failed");
  // A key whose hash does not match, and no key.
  assert.equal((await check(c, () => {}, `${name}+00000000+${key64}`)).status, "failed");
  assert.equal((await check(c, () => {}, "")).status, "failed");
});

test("an entry newer than the checkpoint is pending, not verified", async () => {
  const c = byName.pending;
  assert.equal((await check(c)).status, "pending");
  // Still bound to its row.
  assert.equal((await check(c, (d, row) => { row.actor = "someone-else"; })).status, "failed");
});

test("RFC 6962 hashing", async () => {
  // The hash of the empty leaf, SHA-256(0x00), as in RFC 6962 test vectors.
  const leaf = await proof.leafHash(new Uint8Array());
  assert.equal(Buffer.from(leaf).toString("hex"), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  // A tree of one: the root is the leaf, the proof empty.
  assert.deepEqual(await proof.rootFromInclusion(0, 1, leaf, []), leaf);
  await assert.rejects(proof.rootFromInclusion(1, 1, leaf, []));
});

test("proof.js is ASCII, so that any charset reads it the same", () => {
  // Served without a charset, a non-ASCII "\u2014" in the source would be
  // read as other characters, and no signature line would parse.
  const src = readFileSync(new URL("./proof.js", import.meta.url));
  const at = src.findIndex((b) => b > 0x7f);
  assert.equal(at, -1, `non-ASCII byte at offset ${at}`);
});

// proof.js checks, in the browser, that an entry of phivault's audit trail
// is in the tree of a signed checkpoint, with WebCrypto only: the browser
// hashes the entry's bytes into the leaf itself (RFC 6962: SHA-256 of
// 0x00 and the entry), climbs the inclusion proof to the root (SHA-256 of
// 0x01, left and right), compares that with the checkpoint's root hash,
// and checks the checkpoint's Ed25519 signature (a signed note, as
// golang.org/x/mod/sumdb/note writes it) with the verifier key the officer
// gave. It also checks that the bytes are the row shown (its time and
// agent). "verified" means all of that passed here, whatever the server
// said.
//
// Loaded as a classic script by the audit page (it wires the "Verify"
// buttons), and by Node (node --test console/static/proof_test.mjs) through
// module.exports.
(function () {
  "use strict";

  const subtle = globalThis.crypto.subtle;
  const enc = new TextEncoder();

  // A ProofError is a reason a check failed, safe to show.
  class ProofError extends Error {}

  function fail(msg) {
    throw new ProofError(msg);
  }

  function fromBase64(s) {
    let bin;
    try {
      bin = atob(s);
    } catch (e) {
      fail("not base64");
    }
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function concat(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  // leafHash is the tree's hash of a record: SHA-256(0x00 || record).
  function leafHash(record) {
    return sha256(concat(Uint8Array.of(0), record));
  }

  // nodeHash is the hash of an inner node: SHA-256(0x01 || left || right).
  function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  // rootFromInclusion climbs proof from leaf, the record at index of a tree
  // of size records, and returns the root hash it leads to (RFC 9162,
  // 2.1.3.2), or throws if the proof does not fit the index and size.
  async function rootFromInclusion(index, size, leaf, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn < 0n || fn > sn) fail("the entry is not below the checkpoint's size");
    let r = leaf;
    for (const p of proof) {
      if (p.length !== 32) fail("a proof hash is not 32 bytes");
      if (sn === 0n) fail("the proof is too long for the tree");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) fail("the proof is too short for the tree");
    return r;
  }

  // parseVerifierKey reads a note verifier key, name+hash+base64(0x01 ||
  // Ed25519 public key), and checks that its hash is the key's.
  async function parseVerifierKey(vkey) {
    // The base64 key may hold "+": only the first two separate.
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(String(vkey).trim());
    if (!m) fail("the verifier key is not of the form name+hash+key");
    const [, name, hash16, key64] = m;
    const key = fromBase64(key64);
    if (key.length !== 33 || key[0] !== 1) fail("the verifier key is not an Ed25519 note key");
    const sum = await sha256(concat(enc.encode(name + "\n"), key));
    const hash = new DataView(sum.buffer).getUint32(0);
    if (hash !== parseInt(hash16, 16)) fail("the verifier key's hash does not match its key");
    return { name, hash, publicKey: key.subarray(1) };
  }

  // openNote checks a signed note's signature by verifier and returns its
  // text: the note's lines up to the empty line, then signature lines
  // "\u2014 name base64(key hash || signature)" (an em dash). The file is
  // kept ASCII, so that it means the same whatever charset it is read in.
  async function openNote(note, verifier) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) fail("the checkpoint is not a signed note");
    const text = note.slice(0, split + 1);
    const sigs = note.slice(split + 2);
    if (!sigs.endsWith("\n")) fail("the checkpoint's signatures are malformed");
    let key;
    try {
      key = await subtle.importKey("raw", verifier.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      fail("this browser cannot check Ed25519 signatures");
    }
    for (const line of sigs.slice(0, -1).split("\n")) {
      if (!line.startsWith("\u2014 ")) fail("the checkpoint's signatures are malformed");
      const [name, b64] = line.slice(2).split(" ");
      const sig = fromBase64(b64 || "");
      if (sig.length !== 68) continue; // not an Ed25519 signature
      const hash = new DataView(sig.buffer, sig.byteOffset).getUint32(0);
      if (name !== verifier.name || hash !== verifier.hash) continue;
      if (await subtle.verify({ name: "Ed25519" }, key, sig.subarray(4), enc.encode(text))) {
        return text;
      }
      fail("the checkpoint's signature is not valid for the verifier key");
    }
    fail("the checkpoint is not signed by the verifier key");
  }

  // parseCheckpoint reads a checkpoint's text: origin, size and base64
  // root hash, one a line, in canonical form.
  function parseCheckpoint(text) {
    const lines = text.split("\n");
    if (lines.length !== 4 || lines[3] !== "") fail("the checkpoint must have exactly three lines");
    const [origin, size10, root64] = lines;
    if (!/^(0|[1-9][0-9]*)$/.test(size10)) fail("the checkpoint's size is not a number");
    const root = fromBase64(root64);
    if (root.length !== 32) fail("the checkpoint's root hash is not 32 bytes");
    return { origin, size: BigInt(size10), root };
  }

  // checkRow checks that the entry's bytes are the row shown: the same
  // time (exactly) and the same agent.
  function checkRow(entry, row) {
    let e;
    try {
      e = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(entry));
    } catch (err) {
      fail("the entry's bytes are not an entry");
    }
    if (e.time !== row.recorded) fail("the entry's bytes are of another time than the row shown");
    if ((e.actor || "") !== (row.actor || "")) fail("the entry's bytes are of another agent than the row shown");
  }

  // verifyEntry checks data, as GET /console/audit/proof answers it, for
  // the row shown ({index, recorded, actor}) with the verifier key vkey.
  // It returns {status, reason}: status "verified", "pending" (the entry
  // is newer than the checkpoint) or "failed", with the reason.
  async function verifyEntry(data, row, vkey) {
    try {
      if (!vkey) fail("no verifier key given");
      const verifier = await parseVerifierKey(vkey);
      if (typeof data.checkpoint !== "string" || typeof data.entry !== "string" || !Array.isArray(data.proof)) {
        fail("the proof data is incomplete");
      }
      if (String(data.index) !== String(row.index)) fail("the proof data is for another entry");
      const cp = parseCheckpoint(await openNote(data.checkpoint, verifier));
      if (cp.origin !== verifier.name) fail("the checkpoint is of another log than the verifier key's");
      const entry = fromBase64(data.entry);
      checkRow(entry, row);
      if (BigInt(row.index) >= cp.size) {
        return { status: "pending", reason: "not yet in a signed checkpoint (it covers " + cp.size + " entries)" };
      }
      const leaf = await leafHash(entry);
      const root = await rootFromInclusion(row.index, cp.size, leaf, data.proof.map(fromBase64));
      if (!equal(root, cp.root)) fail("the inclusion proof does not lead to the checkpoint's root hash");
      return { status: "verified", reason: "in the tree of " + cp.size + " entries signed by " + verifier.name };
    } catch (e) {
      if (e instanceof ProofError) return { status: "failed", reason: e.message };
      return { status: "failed", reason: "the check could not run: " + e.message };
    }
  }

  const api = { verifyEntry, leafHash, nodeHash, rootFromInclusion, parseVerifierKey, openNote, parseCheckpoint };

  if (typeof module === "object" && module.exports) {
    module.exports = api;
    return;
  }

  // The audit page: the verifier key field and the "Verify" buttons.
  const storeKey = "phivault.auditVerifierKey";

  function wire() {
    const input = document.getElementById("proof-vkey");
    const state = document.getElementById("proof-vkey-state");
    if (!input) return;
    const showKey = async () => {
      if (!input.value.trim()) {
        state.textContent = "No key given: entries cannot be verified.";
        return;
      }
      try {
        const v = await parseVerifierKey(input.value);
        state.textContent = "Checking against the key of " + v.name + ".";
      } catch (e) {
        state.textContent = "This is not a verifier key: " + e.message + ".";
      }
    };
    try {
      input.value = localStorage.getItem(storeKey) || "";
    } catch (e) {
      // storage refused: the key is asked for again on each page
    }
    showKey();
    input.addEventListener("change", () => {
      try {
        localStorage.setItem(storeKey, input.value.trim());
      } catch (e) {
        // storage refused
      }
      showKey();
    });
    for (const button of document.querySelectorAll("button.proof-verify")) {
      button.addEventListener("click", () => check(button, input.value.trim()));
    }
  }

  async function check(button, vkey) {
    const tr = button.closest("tr");
    const out = tr.querySelector("output.proof-result");
    const row = { index: tr.dataset.index, recorded: tr.dataset.recorded, actor: tr.dataset.actor };
    button.disabled = true;
    out.className = "proof-result";
    out.textContent = "checking\u2026";
    let result;
    try {
      const res = await fetch("/console/audit/proof?index=" + encodeURIComponent(row.index), {
        headers: { Accept: "application/json" }, credentials: "same-origin", redirect: "error",
      });
      const data = await res.json();
      result = res.ok ? await verifyEntry(data, row, vkey) : { status: "failed", reason: data.error || "the proof could not be fetched" };
    } catch (e) {
      result = { status: "failed", reason: "the proof could not be fetched (signed out? reload the page)" };
    }
    const words = { verified: "verified", pending: "not yet in a signed checkpoint", failed: "failed" };
    out.classList.add("proof-" + result.status);
    out.textContent = result.status === "pending" ? words.pending : words[result.status] + ": " + result.reason;
    out.title = result.reason;
    button.disabled = false;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();

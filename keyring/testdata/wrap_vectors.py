#!/usr/bin/env python3
"""Known answers for the file and PKCS#11 keyrings' DEK wrapping.

An independent implementation of docs/crypto.md, "Wrapping a DEK", with
pyca/cryptography's AES-GCM. Run from this folder to rewrite
wrap-vectors.json:

    python3 wrap_vectors.py > wrap-vectors.json

Format 2 (bound) additional data:
    "phivault dek v2" || 0x00 || len32(kek id) || kek id || len32(name) || name
Format 1 (unbound, read only) additional data:
    "phivault dek v1" || 0x00 || kek id
wrapped = nonce (12) || AES-256-GCM(KEK, nonce, DEK, AD) || tag (16)
"""
import hashlib
import json
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def det(label, n):
    """Deterministic test bytes: SHA-256 of label, repeated."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]


def ad(kek_id, name):
    if name == "":
        return b"phivault dek v1\x00" + kek_id.encode()
    k, n = kek_id.encode(), name.encode()
    return b"phivault dek v2\x00" + struct.pack(">I", len(k)) + k + struct.pack(">I", len(n)) + n


cases = [
    ("bound patient", "file:1", "patient/8a6f0c9e-3d1b-4c1e-9f4a-2b7d5e6c1a90"),
    ("bound patient version", "file:1", "patient/8a6f0c9e-3d1b-4c1e-9f4a-2b7d5e6c1a90#2"),
    ("bound shared", "file:3", "shared"),
    ("bound index", "file:1", "index"),
    ("unbound (format 1)", "file:1", ""),
    ("unbound (format 1), later kek", "file:2", ""),
]
vectors = []
for label, kek_id, name in cases:
    kek = det("kek " + kek_id, 32)
    nonce = det("nonce " + label, 12)
    dek = det("dek " + label, 32)
    a = ad(kek_id, name)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, dek, a)
    vectors.append({
        "Name": label, "KEKID": kek_id, "KEK": kek.hex(), "KeyName": name,
        "Nonce": nonce.hex(), "DEK": dek.hex(), "AD": a.hex(), "Wrapped": wrapped.hex(),
    })
print(json.dumps({"Wrap": vectors}, indent=2))
